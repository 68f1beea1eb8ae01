//! The server's reply body.
#![no_main]
libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    stacksense_heartbeat::fuzz::reply(body);
});
