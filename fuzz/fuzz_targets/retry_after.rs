//! `Retry-After` as seconds or an HTTP date.
#![no_main]
libfuzzer_sys::fuzz_target!(|value: &str| {
    stacksense_heartbeat::fuzz::retry_after(value);
});
