//! nvmf-dlp: decode a raw discovery log page (Get Log Page LID 0x70) file.
//!
//! Prints the entries as a table, or with `--json` as a JSON array of
//! nvme-stas DLPE dicts (the shape stafd returns over D-Bus). Entries that do
//! not decode, and a page shorter than its NUMREC promises, are reported on
//! stderr; the entries that do decode are still printed.
//!
//! Exit status: 0 all entries decoded; 1 the file could not be read or has no
//! header; 2 the page was printed but some entries were bad or missing.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nvmf_proto::dlp::{DiscoveryLogEntry, DiscoveryLogPage};
use tools::output::{table, OrderedObject};

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

fn row(index: usize, e: &DiscoveryLogEntry, cli: bool) -> Vec<String> {
    let (trtype, adrfam, subtype, treq, eflags) = if cli {
        (
            e.trtype.cli_str().to_owned(),
            e.adrfam.cli_str().to_owned(),
            e.subtype.cli_str().to_owned(),
            e.treq.cli_str(),
            e.eflags.cli_str(),
        )
    } else {
        (
            e.trtype.stas_str().into_owned(),
            e.adrfam.stas_str().into_owned(),
            e.subtype.stas_str().into_owned(),
            e.treq.stas_str().into_owned(),
            e.eflags.stas_str(),
        )
    };
    vec![
        index.to_string(),
        trtype,
        adrfam,
        subtype,
        e.traddr.clone(),
        e.trsvcid.clone(),
        e.portid.to_string(),
        e.subnqn.clone(),
        treq,
        eflags,
    ]
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
        let dicts: Vec<OrderedObject> = page
            .valid_entries()
            .map(|e| OrderedObject::from_pairs(e.stas_dict()))
            .collect();
        match serde_json::to_string_pretty(&dicts) {
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
        let rows: Vec<Vec<String>> = page
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().ok().map(|e| row(i, e, args.cli_names)))
            .collect();
        print!(
            "{}",
            table(
                &[
                    "#", "trtype", "adrfam", "subtype", "traddr", "trsvcid", "portid", "subnqn",
                    "treq", "eflags"
                ],
                &rows
            )
        );
    }

    let mut status = ExitCode::SUCCESS;
    for err in page.entry_errors() {
        eprintln!("nvmf-dlp: {name}: {err}; entry skipped");
        status = ExitCode::from(2);
    }
    if let Err(e) = page.check_complete() {
        eprintln!("nvmf-dlp: {name}: page truncated: {e}");
        status = ExitCode::from(2);
    }
    status
}
