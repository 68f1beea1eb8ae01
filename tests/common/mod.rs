//! Test harness: scripted HTTP(S) receivers on 127.0.0.1 and the real agent
//! binary as a child process whose every wait has a deadline. The examples
//! (demo, benchmarks) use it too, through `#[path]`.
#![allow(dead_code, unused_imports)] // each test binary and example uses a different part of it

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
pub use stacksense::StackSense;
pub use tempdir::TempDir;
pub use tls::{TlsFixture, pin_of};
