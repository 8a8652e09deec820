//! nvmf-dlp: decode a raw discovery log page (Get Log Page LID 0x70) file.
//!
//! Prints the entries as a table, or with `--json` as a JSON array of
//! nvme-stas DLPE dicts (the shape stafd returns over D-Bus). Entries that do
//! not decode, and a page shorter than its NUMREC promises, are reported on
//! stderr; the entries that do decode are still printed.
//!
//! Exit status: 0 all entries decoded; 1 the file could not be read or has no
//! header; 3 the page was printed but some entries were bad or missing.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nvmf_proto::dlp::DiscoveryLogPage;
use tools::output::{dlp_json, dlp_table, report_page_problems, Spelling, EXIT_PARTIAL};

#[derive(Debug, Parser)]
#[command(version, about = "Decode a raw NVMe-oF discovery log page file")]
struct Args {
    /// The log page file (raw bytes as read with Get Log Page); `-` for stdin.
    file: PathBuf,
    /// Print a JSON array of nvme-stas DLPE dicts instead of a table.
    #[arg(long)]
    json: bool,
    /// In the table, spell values as nvme-cli does (`nvme subsystem`) rather
    /// than as nvme-stas does (`nvme`).
    #[arg(long)]
    cli_names: bool,
}

fn read_input(path: &PathBuf) -> std::io::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let name = args.file.display();
    let raw = match read_input(&args.file) {
        Ok(raw) => raw,
        Err(e) => {
            eprintln!("nvmf-dlp: cannot read {name}: {e}");
            return ExitCode::from(1);
        }
    };
    let page = match DiscoveryLogPage::parse(&raw) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("nvmf-dlp: {name} is not a discovery log page: {e}");
            return ExitCode::from(1);
        }
    };

    if args.json {
        match dlp_json(&page) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("nvmf-dlp: cannot encode JSON: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        let h = &page.header;
        println!(
            "Discovery log page {name}: genctr {}, numrec {}, recfmt {}",
            h.genctr, h.numrec, h.recfmt
        );
        let spelling = if args.cli_names {
            Spelling::Cli
        } else {
            Spelling::Stas
        };
        print!("{}", dlp_table(&page, spelling));
    }

    if report_page_problems(&format!("nvmf-dlp: {name}"), &page) {
        return ExitCode::from(EXIT_PARTIAL);
    }
    ExitCode::SUCCESS
}
