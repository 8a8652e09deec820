//! stacd: the I/O-controller daemon (to be built by the stacd issue).

fn main() {
    eprintln!("stacd: not implemented yet in this build of stas");
    std::process::exit(1);
}
