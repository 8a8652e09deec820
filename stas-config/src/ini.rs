//! nvme-stas's INI dialect (docs/behaviour.md §3.2): Python `configparser` with no
//! DEFAULT section, keys allowed without `=`, `=` the only delimiter, no
//! interpolation, non-strict, and every option a list of values.
//!
//! * `[Name]` headers are case-sensitive; a repeated header continues the
//!   same section (`[DEFAULT]` is an ordinary name).
//! * Option names are stripped and lower-cased; values are stripped.
//! * Only whole lines starting (after blanks) with `#` or `;` are comments.
//! * A line indented deeper than its key line is a continuation line, and
//!   becomes a separate value of that key.
//! * Every occurrence of a key adds a value; a key without `=` adds a value
//!   without text; `key=` adds one empty string.
//!
//! A non-blank line before the first header, a line starting with `[` that is
//! not a header, a line starting with `=` (no option name) and a
//! continuation of a key written without `=` are syntax errors. (Python
//! would take a malformed header as a valueless option, and crash on the
//! last case.)
//!
//! Deliberate difference: blank lines are ignored, as §3.2 states. Python
//! (`empty_lines_in_values`) appends an empty value to the key above a blank
//! line when another value of that key follows, which turns a blank line
//! between two `exclude=` lines into an "exclude everything" entry.

use crate::error::ConfigError;

/// One value of an option, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// The stripped text; `None` for a key written without `=`.
    pub text: Option<String>,
    /// 1-based line number.
    pub line: usize,
    /// Whether the value came from a continuation line.
    pub continuation: bool,
}

/// One option of a section: every value in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniOption {
    /// Lower-cased, stripped name.
    pub name: String,
    /// Line of the first occurrence.
    pub line: usize,
    /// Values in file order (never empty).
    pub values: Vec<Value>,
}

impl IniOption {
    /// The value scalar options use: the last one.
    pub fn last(&self) -> Option<&Value> {
        self.values.last()
    }
}

/// One section; repeated headers of the same name are merged into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Name between the brackets, exactly as written.
    pub name: String,
    /// Line of the first header.
    pub line: usize,
    /// Options in order of first appearance.
    pub options: Vec<IniOption>,
}

impl Section {
    /// The option called `name` (lower case), if present.
    pub fn option(&self, name: &str) -> Option<&IniOption> {
        self.options.iter().find(|o| o.name == name)
    }
}

/// Something odd but accepted, e.g. text after a section header's `]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// 1-based line number.
    pub line: usize,
    /// What was odd and what happened to it.
    pub message: String,
}

/// A parsed file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ini {
    sections: Vec<Section>,
    notes: Vec<Note>,
}

/// Splits like Python's universal newlines: `\n`, `\r\n` or `\r`.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\n', '\r']) {
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
            None => {
                rest = None;
                // A final newline does not start another line.
                (!s.is_empty()).then_some(s)
            }
        }
    })
}

impl Ini {
    /// Parses `text`; `origin` (normally the file path) names the file in
    /// errors.
    pub fn parse(text: &str, origin: &str) -> Result<Ini, ConfigError> {
        let syntax = |line: usize, message: String| ConfigError::Syntax {
            file: origin.to_owned(),
            line,
            message,
        };
        // Python would choke on a byte-order mark; a BOM is harmless.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut ini = Ini::default();
        // (section index, option index) of the key continuation lines extend.
        let mut current: Option<(usize, Option<usize>)> = None;
        let mut indent_level = 0usize;

        for (idx, raw) in lines(text).enumerate() {
            let lineno = idx + 1;
            let stripped = raw.trim();
            if stripped.is_empty() || stripped.starts_with(['#', ';']) {
                continue;
            }
            let indent = raw.chars().take_while(|c| c.is_whitespace()).count();

            if let Some((s, Some(o))) = current {
                if indent > indent_level {
                    let option = ini
                        .sections
                        .get_mut(s)
                        .and_then(|sec| sec.options.get_mut(o))
                        .ok_or_else(|| syntax(lineno, "internal error".to_owned()))?;
                    if option.values.last().is_some_and(|v| v.text.is_none()) {
                        return Err(syntax(
                            lineno,
                            format!(
                                "continuation line for option \"{}\", which has no \"=\"; \
                                 write \"{} = value\" or do not indent this line",
                                option.name, option.name
                            ),
                        ));
                    }
                    option.values.push(Value {
                        text: Some(stripped.to_owned()),
                        line: lineno,
                        continuation: true,
                    });
                    continue;
                }
            }
            indent_level = indent;

            if stripped.starts_with('[') {
                // Python's header regex is `\[(.+)\]` matched at the start:
                // the name runs to the last `]`, anything after it is dropped.
                let close = stripped.rfind(']').filter(|&i| i >= 2).ok_or_else(|| {
                    syntax(
                        lineno,
                        format!(
                            "malformed section header {stripped:?}; expected a name in brackets, \
                             e.g. [Global]"
                        ),
                    )
                })?;
                let name = &stripped[1..close];
                let trailing = stripped[close + 1..].trim();
                if !trailing.is_empty() {
                    ini.notes.push(Note {
                        line: lineno,
                        message: format!(
                            "text {trailing:?} after the section header is ignored \
                             (options go on lines of their own)"
                        ),
                    });
                }
                let s = match ini.sections.iter().position(|sec| sec.name == name) {
                    Some(s) => {
                        let first = ini.sections.get(s).map_or(0, |sec| sec.line);
                        ini.notes.push(Note {
                            line: lineno,
                            message: format!(
                                "section [{name}] repeated (first at line {first});                                  its options are merged into the first"
                            ),
                        });
                        s
                    }
                    None => {
                        ini.sections.push(Section {
                            name: name.to_owned(),
                            line: lineno,
                            options: Vec::new(),
                        });
                        ini.sections.len() - 1
                    }
                };
                current = Some((s, None));
                continue;
            }

            let Some((s, _)) = current else {
                return Err(syntax(
                    lineno,
                    format!(
                        "{stripped:?} comes before the first section header; \
                         expected a header such as [Global] first"
                    ),
                ));
            };
            let (name, text) = match stripped.split_once('=') {
                Some((name, value)) => (name.trim_end(), Some(value.trim().to_owned())),
                None => (stripped, None),
            };
            if name.is_empty() {
                return Err(syntax(
                    lineno,
                    format!(
                        "{stripped:?} has no option name before \"=\"; expected option = value"
                    ),
                ));
            }
            let name = name.to_lowercase();
            let section = ini
                .sections
                .get_mut(s)
                .ok_or_else(|| syntax(lineno, "internal error".to_owned()))?;
            let value = Value {
                text,
                line: lineno,
                continuation: false,
            };
            let o = match section.options.iter().position(|o| o.name == name) {
                Some(o) => {
                    if let Some(option) = section.options.get_mut(o) {
                        option.values.push(value);
                    }
                    o
                }
                None => {
                    section.options.push(IniOption {
                        name,
                        line: lineno,
                        values: vec![value],
                    });
                    section.options.len() - 1
                }
            };
            current = Some((s, Some(o)));
        }
        Ok(ini)
    }

    /// Sections in order of first appearance.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The section called exactly `name`, if present.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The option `option` (lower case) of section `section`, if present.
    pub fn option(&self, section: &str, option: &str) -> Option<&IniOption> {
        self.section(section)?.option(option)
    }

    /// Every value of an option in file order; empty when absent.
    pub fn values(&self, section: &str, option: &str) -> &[Value] {
        self.option(section, option)
            .map_or(&[], |o| o.values.as_slice())
    }

    /// The last value of an option (the one scalar options use).
    pub fn last(&self, section: &str, option: &str) -> Option<&Value> {
        self.values(section, option).last()
    }

    /// Oddities that were accepted.
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(ini: &Ini, section: &str, option: &str) -> Vec<Option<String>> {
        ini.values(section, option)
            .iter()
            .map(|v| v.text.clone())
            .collect()
    }

    fn some(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|s| Some((*s).to_owned())).collect()
    }

    #[test]
    fn basic_rules() {
        let ini = Ini::parse(
            "[Global]\nKato = 5\n  TRON=true  \nip-family: ipv4\n",
            "t.conf",
        )
        .unwrap();
        // Indented deeper than "Kato = 5": a continuation, not a key.
        assert_eq!(texts(&ini, "Global", "kato"), some(&["5", "TRON=true"]));
        assert!(ini.option("Global", "tron").is_none());
        let ini = Ini::parse("[Global]\nKato = 5\nTRON=true  \nip-family: ipv4\n", "t").unwrap();
        assert_eq!(texts(&ini, "Global", "tron"), some(&["true"]));
        // ':' is not a delimiter: the whole line is a valueless key.
        assert_eq!(texts(&ini, "Global", "ip-family: ipv4"), vec![None]);
        assert_eq!(ini.values("Global", "missing"), &[]);
        assert_eq!(ini.last("Global", "kato").unwrap().line, 2);
    }

    #[test]
    fn continuation_lines_are_separate_values() {
        let text = "[Controllers]\ncontroller = transport=tcp;traddr=1.1.1.1\n    transport=tcp;traddr=2.2.2.2\n\t# comment\n\n  transport=rdma;traddr=3.3.3.3\nexclude=\ncontroller=transport=fc\n";
        let ini = Ini::parse(text, "t").unwrap();
        let values = ini.values("Controllers", "controller");
        assert_eq!(
            values
                .iter()
                .map(|v| (v.text.as_deref(), v.line, v.continuation))
                .collect::<Vec<_>>(),
            vec![
                (Some("transport=tcp;traddr=1.1.1.1"), 2, false),
                (Some("transport=tcp;traddr=2.2.2.2"), 3, true),
                (Some("transport=rdma;traddr=3.3.3.3"), 6, true),
                (Some("transport=fc"), 8, false),
            ]
        );
        assert_eq!(texts(&ini, "Controllers", "exclude"), some(&[""]));
    }

    #[test]
    fn continuation_only_after_a_key_and_only_deeper() {
        // After a header there is no key to continue: indented lines are keys.
        let ini = Ini::parse("[A]\n  a=1\n  b=2\n    c\n", "t").unwrap();
        assert_eq!(texts(&ini, "A", "a"), some(&["1"]));
        assert_eq!(texts(&ini, "A", "b"), some(&["2", "c"]));
        // An indented header under a key is a value of that key.
        let ini = Ini::parse("[A]\na=1\n  [B]\n", "t").unwrap();
        assert_eq!(texts(&ini, "A", "a"), some(&["1", "[B]"]));
        assert!(ini.section("B").is_none());
    }

    #[test]
    fn comments_are_whole_lines_only() {
        let ini = Ini::parse(
            "# top\n; top\n[Controllers]\n  # indented comment\n;x=1\nexclude = transport=tcp;traddr=fe80::1 # text\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            texts(&ini, "Controllers", "exclude"),
            some(&["transport=tcp;traddr=fe80::1 # text"])
        );
        assert_eq!(ini.section("Controllers").unwrap().options.len(), 1);
    }

    #[test]
    fn sections_are_case_sensitive_and_merge() {
        let ini = Ini::parse(
            "[DEFAULT]\nkato=1\n[Global]\nkato=2\n[global]\nkato=3\n[Global]\nKATO=4\ntron\n",
            "t",
        )
        .unwrap();
        let names: Vec<_> = ini.sections().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["DEFAULT", "Global", "global"]);
        assert_eq!(texts(&ini, "DEFAULT", "kato"), some(&["1"]));
        assert_eq!(texts(&ini, "Global", "kato"), some(&["2", "4"]));
        assert_eq!(texts(&ini, "global", "kato"), some(&["3"]));
        assert_eq!(texts(&ini, "Global", "tron"), vec![None]);
        assert_eq!(ini.section("Global").unwrap().line, 3);
    }

    #[test]
    fn values_keep_everything_after_the_first_equals() {
        let ini = Ini::parse("[C]\n  a  =  b = c  \nempty=\ne = \n", "t").unwrap();
        assert_eq!(texts(&ini, "C", "a"), some(&["b = c"]));
        assert_eq!(texts(&ini, "C", "empty"), some(&[""]));
        assert_eq!(texts(&ini, "C", "e"), some(&[""]));
    }

    #[test]
    fn header_quirks() {
        let ini = Ini::parse("[Global] kato=5\n[a]b]\n[ Spaced ]\n", "t").unwrap();
        assert!(ini.section("Global").unwrap().options.is_empty());
        assert_eq!(ini.notes().len(), 1);
        assert_eq!(ini.notes()[0].line, 1);
        assert!(ini.section("a]b").is_some());
        assert!(ini.section(" Spaced ").is_some());
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        for (text, line) in [
            ("kato=5\n[Global]\n", 1),
            ("# c\n\n  tron\n", 3),
            ("[Global]\ntron=true\n[Global\n", 3),
            ("[Global]\n[]\n", 2),
            ("[Global]\n= 5\n", 2),
            ("[Global]\ntron\n  true\n", 3),
        ] {
            match Ini::parse(text, "/etc/stas/stafd.conf") {
                Err(ConfigError::Syntax { file, line: l, .. }) => {
                    assert_eq!(file, "/etc/stas/stafd.conf");
                    assert_eq!(l, line, "{text:?}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let err = Ini::parse("x\n", "/etc/stas/stafd.conf").unwrap_err();
        assert!(
            err.to_string().starts_with("/etc/stas/stafd.conf:1: "),
            "{err}"
        );
    }

    #[test]
    fn line_endings_and_bom() {
        let ini = Ini::parse("\u{feff}[A]\r\na=1\rb=2\r\n\r\nc=3", "t").unwrap();
        assert_eq!(texts(&ini, "A", "a"), some(&["1"]));
        assert_eq!(ini.last("A", "b").unwrap().line, 3);
        assert_eq!(ini.last("A", "c").unwrap().line, 5);
    }
}
