//! The behaviour the code cites lives in the repository: every `§` section
//! number in a Rust file (and in docs/*.md) names a heading of the document
//! it refers to, and every `docs/*.md` path a Rust file mentions exists.
//!
//! Which document a section number refers to, first match wins:
//! 1. a document named earlier on the same line (`docs/behaviour.md §6.8`,
//!    `RFC 6762 §10.1`; in docs/*.md also a bare `kernel-interface.md`);
//! 2. a document named at the very end of the previous line (a reference
//!    wrapped after the name);
//! 3. the default: the documents named on the line containing "Bare §
//!    numbers" of the crate root's doc (src/lib.rs, else src/main.rs) or, in
//!    docs/*.md, of the page itself (else the page). Several documents may
//!    share one numbering (behaviour.md has sections 1 to 15, upstream.md 16
//!    to 19): a number goes to the first whose top-level heading it falls
//!    under.
//!
//! Sections of RFCs are not checked. `§18.2 #12`, `§13.3 rule 5` and
//! `§7.2 step 3` are checked too: the section must have a numbered list item
//! of that number.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The workspace root (the tests crate lives one level below it).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Every file under `dir` whose name ends with `suffix`, skipping build
/// output and VCS metadata.
fn files_under(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                files_under(&path, suffix, out);
            }
        } else if name.ends_with(suffix) {
            out.push(path);
        }
    }
}

/// Where a cited number points.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A file under the workspace root, e.g. `docs/behaviour.md`.
    Doc(String),
    /// An RFC: not checked.
    Rfc,
}

/// Every document named in `text`, with its end offset, in order.
fn docs_named(text: &str, bare_md: bool) -> Vec<(usize, Target)> {
    let mut found = Vec::new();
    let mut rest = text;
    let mut base = 0;
    while let Some((end, target)) = first_doc_named(rest, bare_md) {
        found.push((base + end, target));
        base += end;
        rest = &rest[end..];
    }
    found
}

/// The first document named in `text`, with its end offset.
fn first_doc_named(text: &str, bare_md: bool) -> Option<(usize, Target)> {
    (1..=text.len())
        .filter(|end| text.is_char_boundary(*end))
        .find_map(|end| last_doc_named(&text[..end], bare_md).filter(|(e, _)| *e == end))
}

/// The last document named in `text`, with its end offset.
fn last_doc_named(text: &str, bare_md: bool) -> Option<(usize, Target)> {
    let mut best: Option<(usize, Target)> = None;
    let mut consider = |end: usize, target: Target| {
        if best.as_ref().is_none_or(|(e, _)| end > *e) {
            best = Some((end, target));
        }
    };
    for (start, _) in text.match_indices("RFC ") {
        let digits = text[start + 4..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if digits > 0 {
            consider(start + 4 + digits, Target::Rfc);
        }
    }
    for (md, _) in text.match_indices(".md") {
        let end = md + 3;
        let start = text[..md]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "/_-.".contains(c)))
            .map_or(0, |i| i + 1);
        let name = &text[start..end];
        if let Some(rest) = name.strip_prefix("docs/") {
            if !rest.is_empty() {
                consider(end, Target::Doc(name.to_owned()));
            }
        } else if bare_md && !name.contains('/') && name.len() > 3 {
            consider(end, Target::Doc(format!("docs/{name}")));
        }
    }
    best
}

/// One `§` reference: its number and an optional `#N` / `rule N` / `step N`
/// item (the first of a range like `steps 5-6`).
#[derive(Debug)]
struct Reference {
    offset: usize,
    number: String,
    item: Option<String>,
}

fn references(line: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    for (offset, _) in line.match_indices('§') {
        let rest = &line[offset + '§'.len_utf8()..];
        let len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        // A trailing dot ends the sentence, not the number.
        let number = rest[..len].trim_end_matches('.');
        if number.is_empty() || !number.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let after = &rest[number.len()..];
        let item = ["#", "rule ", "step ", "steps "]
            .iter()
            .find_map(|word| after.strip_prefix(' ')?.strip_prefix(word))
            .map(|s| {
                s.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .filter(|s| !s.is_empty());
        out.push(Reference {
            offset,
            number: number.to_owned(),
            item,
        });
    }
    out
}

/// A document's numbered headings, each with the numbered list items
/// (`1.`, `12.`) of its own text.
fn headings(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let title = rest.trim_start_matches('#').trim_start();
            let number = title
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches('.');
            if !number.is_empty() && number.chars().all(|c| c.is_ascii_digit() || c == '.') {
                map.entry(number.to_owned()).or_default();
                current = Some(number.to_owned());
            } else {
                current = None;
            }
            continue;
        }
        if let Some(section) = &current {
            let trimmed = line.trim_start();
            let digits: String = trimmed.chars().take_while(char::is_ascii_digit).collect();
            if !digits.is_empty() && trimmed[digits.len()..].starts_with(". ") {
                map.entry(section.clone()).or_default().insert(digits);
            }
        }
    }
    map
}

/// The package directory (nearest ancestor with a Cargo.toml) of `file`.
fn package_of(root: &Path, file: &Path) -> Option<PathBuf> {
    let mut dir = file.parent()?;
    loop {
        if dir.join("Cargo.toml").is_file() {
            return Some(dir.to_path_buf());
        }
        if dir == root {
            return None;
        }
        dir = dir.parent()?;
    }
}

/// The documents bare § numbers refer to, from the "Bare § numbers" line
/// of `text`.
fn declared_defaults(text: &str, bare_md: bool) -> Option<Vec<Target>> {
    text.lines().find_map(|line| {
        let at = line.find("Bare § numbers")?;
        let docs: Vec<Target> = docs_named(&line[at..], bare_md)
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        (!docs.is_empty()).then_some(docs)
    })
}

/// The documents a package's bare § numbers refer to, from its root's doc.
fn package_defaults(package: &Path) -> Option<Vec<Target>> {
    ["src/lib.rs", "src/main.rs"].iter().find_map(|root| {
        let text = fs::read_to_string(package.join(root)).ok()?;
        declared_defaults(&text, false)
    })
}

#[test]
fn section_numbers_and_doc_paths_resolve() {
    let root = workspace_root();
    // This file explains the rules with examples; it is not checked.
    let this_file = root.join("tests/tests/doc_refs.rs");

    let mut rust_files = Vec::new();
    files_under(&root, ".rs", &mut rust_files);
    rust_files.retain(|f| *f != this_file);
    let mut doc_files = Vec::new();
    files_under(&root.join("docs"), ".md", &mut doc_files);
    assert!(
        rust_files.len() > 50,
        "found only {} Rust files under {}",
        rust_files.len(),
        root.display()
    );

    let mut documents: BTreeMap<String, Option<BTreeMap<String, BTreeSet<String>>>> =
        BTreeMap::new();
    let mut heading_map = |doc: &str| {
        documents
            .entry(doc.to_owned())
            .or_insert_with(|| {
                fs::read_to_string(root.join(doc))
                    .ok()
                    .map(|t| headings(&t))
            })
            .clone()
    };

    let mut failures = Vec::new();
    let mut checked = 0usize;
    let notes_dir = ["shared", "spec"].join("/");
    for file in rust_files.iter().chain(doc_files.iter()) {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        let rel = file.strip_prefix(&root).unwrap_or(file);
        let rel_str = rel.to_string_lossy().into_owned();
        let is_md = rel_str.ends_with(".md");
        let defaults = if is_md {
            declared_defaults(&text, true).or_else(|| Some(vec![Target::Doc(rel_str.clone())]))
        } else {
            package_of(&root, file).and_then(|p| package_defaults(&p))
        };
        let mut previous = "";
        for (index, line) in text.lines().enumerate() {
            let at = format!("{}:{}", rel.display(), index + 1);
            if !is_md && line.contains(&notes_dir) {
                failures.push(format!(
                    "{at}: cites {notes_dir}, which is not in the repository; cite docs/ instead"
                ));
            }
            if !is_md {
                for (md, _) in line.match_indices(".md") {
                    if let Some((_, Target::Doc(doc))) = last_doc_named(&line[..md + 3], false) {
                        if !root.join(&doc).is_file() {
                            failures.push(format!("{at}: {doc} does not exist"));
                        }
                    }
                }
            }
            let carried = last_doc_named(previous.trim_end(), is_md)
                .filter(|(end, _)| *end == previous.trim_end().len())
                .map(|(_, t)| t);
            for (n, reference) in references(line).iter().enumerate() {
                let number = &reference.number;
                let top = number.split('.').next().unwrap_or(number);
                let target = last_doc_named(&line[..reference.offset], is_md)
                    .map(|(_, t)| t)
                    .or_else(|| if n == 0 { carried.clone() } else { None })
                    .or_else(|| {
                        let docs = defaults.as_ref()?;
                        docs.iter()
                            .find(|d| match d {
                                Target::Rfc => true,
                                Target::Doc(doc) => {
                                    heading_map(doc).is_some_and(|m| m.contains_key(top))
                                }
                            })
                            .or(docs.first())
                            .cloned()
                    });
                match target {
                    None => failures.push(format!(
                        "{at}: §{number} names no document, and the crate root's doc has no \
                         \"Bare § numbers ... refer to docs/<file>.md\" line"
                    )),
                    Some(Target::Rfc) => {}
                    Some(Target::Doc(doc)) => {
                        checked += 1;
                        match heading_map(&doc) {
                            None => failures.push(format!(
                                "{at}: §{number} refers to {doc}, which does not exist"
                            )),
                            Some(map) => match map.get(number) {
                                None => failures.push(format!(
                                    "{at}: §{number}: {doc} has no heading numbered {number}"
                                )),
                                Some(items) => {
                                    if let Some(item) = &reference.item {
                                        if !items.contains(item) {
                                            failures.push(format!(
                                                "{at}: §{number} item {item}: {doc} §{number} \
                                                 has no list item numbered {item}"
                                            ));
                                        }
                                    }
                                }
                            },
                        }
                    }
                }
            }
            previous = line;
        }
    }
    assert!(
        failures.is_empty(),
        "{} broken reference(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 200, "only {checked} section references checked");
}

#[test]
fn resolver_sees_what_it_should() {
    let refs = references("see §6.8, §18.2 #12 and §13.3 rule 5; per §4.2. Done (§ alone)");
    let found: Vec<_> = refs
        .iter()
        .map(|r| (r.number.as_str(), r.item.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            ("6.8", None),
            ("18.2", Some("12")),
            ("13.3", Some("5")),
            ("4.2", None)
        ]
    );
    assert_eq!(
        last_doc_named("(docs/kernel-interface.md §3.4, RFC 6762 ", false).map(|(_, t)| t),
        Some(Target::Rfc)
    );
    assert_eq!(
        last_doc_named("layout: docs/kernel-interface.md ", false).map(|(_, t)| t),
        Some(Target::Doc("docs/kernel-interface.md".into()))
    );
    assert_eq!(
        docs_named(
            "Bare § numbers: docs/behaviour.md and docs/upstream.md.",
            false
        )
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>(),
        [
            Target::Doc("docs/behaviour.md".into()),
            Target::Doc("docs/upstream.md".into())
        ]
    );
    assert_eq!(
        last_doc_named("see [x](kernel-interface.md) ", true).map(|(_, t)| t),
        Some(Target::Doc("docs/kernel-interface.md".into()))
    );
    let map = headings("## 6. stafd\n### 6.8 LKC\n1. one\n12. twelve\n```\n## 9. code\n```\n");
    assert!(map.contains_key("6"));
    assert_eq!(
        map.get("6.8")
            .map(|s| s.iter().cloned().collect::<Vec<_>>()),
        Some(vec!["1".to_owned(), "12".to_owned()])
    );
    assert!(!map.contains_key("9"));
}
