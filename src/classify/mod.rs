//! What an HTTP status or a transport error means for the agent: accepted,
//! worth retrying now, or wrong until a person changes something.

use std::time::Duration;

mod status;
mod transport;

pub use status::{Sent, parse_retry_after, status_failure};
pub use transport::{Route, Trusting, error_failure, io_failure};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Likely to pass on its own soon: retry with backoff before the next slot.
    Retryable,
    /// Needs a person (wrong URL, id, token, CA): no retries until the next slot.
    Fatal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub class: Class,
    /// One line for the log: what happened, in words.
    pub reason: String,
    pub retry_after: Option<Duration>,
    /// What the reader should check, when we can tell.
    pub hint: Option<String>,
    /// The attempt ran out of time (rather than being refused or reset).
    pub timed_out: bool,
}

impl Failure {
    pub fn retryable(reason: String) -> Failure {
        Failure {
            class: Class::Retryable,
            reason,
            retry_after: None,
            hint: None,
            timed_out: false,
        }
    }

    pub fn fatal(reason: String, hint: Option<&str>) -> Failure {
        Failure {
            class: Class::Fatal,
            hint: hint.map(str::to_string),
            ..Failure::retryable(reason)
        }
    }

    pub(crate) fn timed_out(reason: String) -> Failure {
        Failure {
            timed_out: true,
            ..Failure::retryable(reason)
        }
    }
}
