//! `Connection` and `Keep-Alive` of a reply, one per line.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    stacksense_heartbeat::fuzz::reply_headers(text);
});
