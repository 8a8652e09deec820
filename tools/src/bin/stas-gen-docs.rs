//! stas-gen-docs: renders the man pages and shell completions of stafd,
//! stacd, stafctl, stacctl and stasadm from their clap definitions into
//! `dist/man` and `dist/completions` (or under the directory given).
//!
//! Run `cargo run -p tools --bin stas-gen-docs` after changing an option
//! or help text, and commit the result; a test fails while `dist/` is stale.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let dir = args
        .next()
        .map_or_else(tools::docs::dist_dir, PathBuf::from);
    if args.next().is_some() {
        eprintln!("usage: stas-gen-docs [OUTPUT-DIR]   (default: the source tree's dist/)");
        return ExitCode::from(2);
    }
    // Files of programs or subcommands that no longer exist would linger.
    for sub in ["man", "completions"] {
        let old = dir.join(sub);
        if let Err(e) = std::fs::remove_dir_all(&old) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("stas-gen-docs: cannot remove {}: {e}", old.display());
                return ExitCode::from(1);
            }
        }
    }
    match tools::docs::write_all(&dir) {
        Ok(paths) => {
            println!("wrote {} files under {}", paths.len(), dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stas-gen-docs: {e}");
            ExitCode::from(1)
        }
    }
}
