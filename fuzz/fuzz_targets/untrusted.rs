//! Escaping of outside text for a log line.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    stacksense_heartbeat::fuzz::untrusted(text);
});
