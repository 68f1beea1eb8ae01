//! One health check as written in a flag, variable or config file.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    stacksense_heartbeat::fuzz::health_check(text);
});
