//! The real binary against real HTTP(S) servers on 127.0.0.1 that the
//! tests start themselves: one test binary, so rustls, ring and rcgen are
//! linked once (each module used to be a binary of its own). The harness
//! is tests/common/, which the examples share.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod agent_api;
mod config;
mod discovery;
mod fleet;
mod hardening;
mod health;
mod metrics;
mod network;
mod report;
mod reuse;
mod tls;
mod wrapper;
