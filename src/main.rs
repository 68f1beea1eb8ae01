//! stacksense-heartbeat: the binary. Everything is in the library (app.rs
//! wires it), so that fuzz/ can reach the parsers and the compiler can see
//! what nothing uses.

/// Static builds allocate with dlmalloc rather than the libc's allocator:
/// docs/design.md ("The static builds' allocator").
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> std::process::ExitCode {
    stacksense_heartbeat::main()
}
