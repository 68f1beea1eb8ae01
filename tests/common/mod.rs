//! Test harness: scripted HTTP(S) receivers on 127.0.0.1 and the real agent
//! binary as a child process whose every wait has a deadline. The examples
//! (demo, benchmarks) use it too, through `#[path]`.
#![allow(dead_code, unused_imports)] // the tests and each example use a different part of it

/// Fails unless `needle` is in `haystack`, showing the whole haystack
/// (a log, a `--check` page) so the failure says what the agent said.
#[allow(unused_macros)]
macro_rules! assert_contains {
    // A match keeps a temporary haystack (a joined log) alive, as assert_eq! does.
    ($haystack:expr, $needle:expr $(,)?) => {
        match &$haystack {
            haystack => {
                let haystack: &str = ::std::convert::AsRef::<str>::as_ref(haystack);
                let needle = $needle;
                assert!(
                    haystack.contains(needle),
                    "expected to find {:?} in:\n{}",
                    needle,
                    haystack
                );
            }
        }
    };
}

mod agent;
mod hung;
mod proxy;
mod receiver;
mod relay;
pub mod schema;
pub mod stacksense;
mod tempdir;
mod tls;

pub use agent::*;
pub use hung::HungMount;
pub use proxy::TunnelProxy;
pub use receiver::*;
pub use relay::Relay;
pub use schema::assert_valid;
pub use stacksense::{StackSense, wait_for_pushes};
pub use tempdir::TempDir;
pub use tls::{TlsFixture, pin_of};
