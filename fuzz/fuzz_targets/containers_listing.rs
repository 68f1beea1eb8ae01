//! A Docker or Podman engine's answer to the containers listing.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    stacksense_heartbeat::fuzz::containers_listing(bytes);
});
