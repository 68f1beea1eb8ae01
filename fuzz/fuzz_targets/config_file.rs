//! The JSON config file reader (comments, trailing commas, BOM, positions).
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    stacksense_heartbeat::fuzz::config_file(text);
});
