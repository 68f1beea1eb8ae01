//! stacksense-heartbeat: the binary. Everything is in the library (app.rs
//! wires it), so that fuzz/ can reach the parsers and the compiler can see
//! what nothing uses.

fn main() -> std::process::ExitCode {
    stacksense_heartbeat::main()
}
