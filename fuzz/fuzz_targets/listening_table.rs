//! The kernel's listening sockets: /proc/net/tcp text and sock_diag messages.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    stacksense_heartbeat::fuzz::listening_table(bytes);
});
