//! When to try again after a failed attempt.
//!
//! Exponential backoff with "centred" jitter: the nominal delay doubles from
//! 1 s per consecutive failure up to a cap, and the actual delay is drawn
//! uniformly from 50 %..150 % of it. We chose it over the other common kinds:
//! - full jitter (0..100 %) can retry at once, giving a restarting server no
//!   breathing room and producing a spike of near-zero retries;
//! - equal jitter (50..100 %) squeezes a fleet into half the window;
//! - decorrelated jitter needs state per agent and is harder to reason about.
//!
//! A fleet that failed in the same instant is spread over a window as wide as
//! the nominal delay itself, and no agent retries sooner than half of it.
//! The failure count runs across slots and resets on success, so in a long
//! outage the delay soon exceeds the interval and an agent sends no more
//! than its one scheduled beat per interval: a down server sees the fleet's
//! normal rate, not a multiple of it.

use std::time::Duration;

pub const FIRST_DELAY: Duration = Duration::from_secs(1);
pub const MAX_DELAY: Duration = Duration::from_secs(300);
/// A server's `Retry-After` is honoured up to this; beyond it, a server is
/// more likely confused than serious, and we would go quiet for too long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// A retry with less time than this before the next slot is not worth starting.
pub const MIN_ATTEMPT: Duration = Duration::from_millis(100);

/// The delay after the `failures`-th consecutive failure (1-based); `unit`
/// is a random number in `[0, 1)`.
pub fn retry_delay(failures: u32, unit: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let nominal = FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY);
    nominal.mul_f64(0.5 + unit.clamp(0.0, 1.0))
}

/// What to do after a failed attempt; times are offsets from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time, before the next slot.
    RetryAt(Duration),
    /// Give this beat up; the next attempt is the slot at this time.
    Slot(Duration),
}

pub struct Failed {
    pub now: Duration,
    pub retryable: bool,
    /// The backoff delay for this failure (see [`retry_delay`]).
    pub delay: Duration,
    /// The server's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
}

/// Retry before `next_slot` when the error is worth retrying and there is
/// time; otherwise wait for a slot. A `Retry-After` that reaches past the
/// next slot also holds back the slots before it.
pub fn plan(
    failed: &Failed,
    next_slot: Duration,
    first_slot_at_or_after: impl Fn(Duration) -> Duration,
) -> Next {
    let retry_after = failed.retry_after.map(|d| d.min(MAX_RETRY_AFTER));
    if !failed.retryable {
        return Next::Slot(next_slot);
    }
    let wait = failed.delay.max(retry_after.unwrap_or_default());
    let at = failed.now + wait;
    if at + MIN_ATTEMPT <= next_slot {
        return Next::RetryAt(at);
    }
    match retry_after {
        Some(ra) if failed.now + ra > next_slot => {
            Next::Slot(first_slot_at_or_after(failed.now + ra))
        }
        _ => Next::Slot(next_slot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(f64) -> Duration = Duration::from_secs_f64;

    #[test]
    fn delays_double_from_one_second_within_the_jitter_band() {
        for (failures, nominal) in [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (9, 256.0)] {
            assert_eq!(retry_delay(failures, 0.0), S(nominal * 0.5));
            assert_eq!(retry_delay(failures, 0.5), S(nominal));
            assert!(retry_delay(failures, 0.999_999) < S(nominal * 1.5));
        }
    }

    #[test]
    fn delays_are_capped_and_never_overflow() {
        assert_eq!(retry_delay(10, 0.5), MAX_DELAY);
        assert_eq!(retry_delay(u32::MAX, 0.5), MAX_DELAY);
        assert_eq!(retry_delay(0, 0.5), FIRST_DELAY);
    }

    #[test]
    fn a_fleet_failing_together_is_spread_over_the_whole_band() {
        // 1000 agents, evenly spread random numbers: their first retries
        // cover 0.5 s .. 1.5 s, and each 100 ms window holds a tenth of them.
        let delays: Vec<Duration> = (0..1000)
            .map(|i| retry_delay(1, i as f64 / 1000.0))
            .collect();
        let mut buckets = [0u32; 10];
        for d in &delays {
            buckets[((d.as_secs_f64() - 0.5) * 10.0) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&b| (99..=101).contains(&b)),
            "{buckets:?}"
        );
    }

    fn grid(interval: f64) -> impl Fn(Duration) -> Duration {
        move |t| S((t.as_secs_f64() / interval).ceil() * interval)
    }

    #[test]
    fn retryable_failures_retry_before_the_next_slot() {
        let f = Failed {
            now: S(0.1),
            retryable: true,
            delay: S(1.2),
            retry_after: None,
        };
        assert_eq!(plan(&f, S(30.0), grid(30.0)), Next::RetryAt(S(1.3)));
    }

    #[test]
    fn retries_never_run_past_the_next_slot() {
        let f = Failed {
            now: S(25.0),
            retryable: true,
            delay: S(8.0),
            retry_after: None,
        };
        assert_eq!(plan(&f, S(30.0), grid(30.0)), Next::Slot(S(30.0)));
        let f = Failed {
            now: S(29.0),
            retryable: true,
            delay: S(0.95),
            retry_after: None,
        };
        assert_eq!(plan(&f, S(30.0), grid(30.0)), Next::Slot(S(30.0)));
    }

    #[test]
    fn fatal_failures_wait_for_the_next_slot() {
        let f = Failed {
            now: S(0.1),
            retryable: false,
            delay: S(1.0),
            retry_after: Some(S(1.0)),
        };
        assert_eq!(plan(&f, S(30.0), grid(30.0)), Next::Slot(S(30.0)));
    }

    #[test]
    fn retry_after_lengthens_the_wait() {
        let f = Failed {
            now: S(1.0),
            retryable: true,
            delay: S(1.0),
            retry_after: Some(S(2.0)),
        };
        assert_eq!(plan(&f, S(30.0), grid(30.0)), Next::RetryAt(S(3.0)));
    }

    #[test]
    fn retry_after_past_the_next_slot_holds_back_slots_up_to_a_cap() {
        let f = Failed {
            now: S(1.0),
            retryable: true,
            delay: S(1.0),
            retry_after: Some(S(70.0)),
        };
        assert_eq!(plan(&f, S(30.0), grid(30.0)), Next::Slot(S(90.0)));
        let f = Failed {
            now: S(1.0),
            retryable: true,
            delay: S(1.0),
            retry_after: Some(S(99_999.0)),
        };
        assert_eq!(plan(&f, S(30.0), grid(30.0)), Next::Slot(S(630.0)));
    }
}
