//! The stafd binary: everything is in the library (`stafd::main`), so that its
//! parts can be tested and reused from other crates.

fn main() -> std::process::ExitCode {
    stafd::main()
}
