//! The man pages and completions committed under dist/ are what
//! stas-gen-docs renders from the current clap definitions, and they show
//! no hidden (test-only) option.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may panic

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const REGENERATE: &str = "cargo run -p tools --bin stas-gen-docs";

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// The generated files of `dir` (its man/ and completions/ trees).
fn generated_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for sub in ["man", "completions"] {
        out.extend(
            files_under(&dir.join(sub))
                .into_iter()
                .map(|p| Path::new(sub).join(p)),
        );
    }
    out
}

#[test]
fn dist_docs_are_current() {
    let fresh = std::env::temp_dir().join(format!("stas-gen-docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fresh);
    let out = Command::new(env!("CARGO_BIN_EXE_stas-gen-docs"))
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stas-gen-docs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dist = tools::docs::dist_dir();
    let want = generated_under(&fresh);
    let have = generated_under(&dist);
    assert!(want.len() > 20, "too few files generated: {want:?}");
    assert_eq!(
        have, want,
        "dist/ has other man pages or completions than the clap definitions give; run `{REGENERATE}` and commit dist/"
    );
    for rel in &want {
        assert!(
            std::fs::read(fresh.join(rel)).unwrap() == std::fs::read(dist.join(rel)).unwrap(),
            "dist/{} is stale; run `{REGENERATE}` and commit dist/",
            rel.display()
        );
    }
    let _ = std::fs::remove_dir_all(&fresh);
}

#[test]
fn every_program_has_a_page_in_its_section_and_completions() {
    let dist = tools::docs::dist_dir();
    for (name, section) in [
        ("stafd", 8),
        ("stacd", 8),
        ("stafctl", 1),
        ("stacctl", 1),
        ("stasadm", 1),
    ] {
        let page = std::fs::read_to_string(dist.join(format!("man/{name}.{section}")))
            .unwrap_or_else(|e| panic!("man page of {name}: {e}"));
        assert!(
            page.contains(&format!(".TH {name} {section} ")),
            "{name}.{section}: {page}"
        );
        assert!(page.contains(".SH \"SEE ALSO\""), "{name}: no SEE ALSO");
        for f in [
            format!("bash/{name}"),
            format!("zsh/_{name}"),
            format!("fish/{name}.fish"),
        ] {
            let text = std::fs::read_to_string(dist.join("completions").join(&f))
                .unwrap_or_else(|e| panic!("completions/{f}: {e}"));
            assert!(text.contains(name), "completions/{f} does not name {name}");
        }
    }
    let stafctl = std::fs::read_to_string(dist.join("man/stafctl-dlp.1")).unwrap();
    assert!(stafctl.contains("\\-\\-traddr"), "{stafctl}");
}

#[test]
fn hidden_options_stay_out_of_pages_and_completions() {
    let dist = tools::docs::dist_dir();
    let all = generated_under(&dist);
    assert!(!all.is_empty(), "nothing under {}", dist.display());
    for rel in all {
        let text = std::fs::read_to_string(dist.join(&rel)).unwrap();
        // Roff escapes hyphens; fish names long options with -l.
        for hidden in ["sim", "bus-address", "nvme-dir"] {
            for spelling in [
                format!("--{hidden}"),
                format!("-l {hidden} "),
                format!("\\-\\-{}", hidden.replace('-', "\\-")),
            ] {
                assert!(
                    !text.contains(&spelling),
                    "{} mentions the hidden option {spelling}",
                    rel.display()
                );
            }
        }
    }
}
