//! The stacd binary: everything is in the library (`stacd::main`), so that its
//! parts can be tested and reused from other crates.

fn main() -> std::process::ExitCode {
    stacd::main()
}
