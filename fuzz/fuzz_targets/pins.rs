//! `pinned_pubkey`: sha256//BASE64, several separated by `;`.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    stacksense_heartbeat::fuzz::pins(text);
});
