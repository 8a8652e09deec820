//! stafd: the discovery-controller daemon (to be built by the stafd issue).

fn main() {
    eprintln!("stafd: not implemented yet in this build of stas");
    std::process::exit(1);
}
