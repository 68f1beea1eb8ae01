//! When a beat carries a metrics or services push instead of a plain
//! heartbeat: a pure decision from the time, tested without a clock.
//!
//! A push is due once `every` has passed since the last one that landed
//! (a failed push stays due, so the next beat tries again). Beats keep
//! their own schedule, so "passed" allows half a beat interval of slack:
//! a push every 300 s at 30 s beats goes out every tenth beat, not every
//! eleventh when a beat comes a millisecond early. The first metrics push
//! waits for the first beat after beat zero, so its CPU share and rates
//! cover a real interval; services go at once, and again as soon as a
//! check's verdict changes.

use std::time::Duration;

/// The pushes one beat carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Due {
    pub metrics: bool,
    pub services: bool,
}

#[derive(Debug)]
pub struct Cadence {
    every: Duration,
    slack: Duration,
    /// When the next push of each kind is due (None: not reported).
    metrics_at: Option<Duration>,
    services_at: Option<Duration>,
    /// The verdicts the server last got.
    pushed_verdicts: Option<Vec<bool>>,
}

impl Cadence {
    /// Pushes every `every` at beats `interval` apart.
    pub fn new(metrics: bool, services: bool, every: Duration, interval: Duration) -> Cadence {
        let slack = interval / 2;
        Cadence {
            every,
            slack,
            // Beat zero is at 0 and the next one at least half an interval
            // on: with the slack, the first beat that reaches `interval`.
            metrics_at: metrics.then_some(interval),
            services_at: services.then_some(Duration::ZERO),
            pushed_verdicts: None,
        }
    }

    /// What a beat at `now` carries, given its checks' verdicts.
    pub fn due(&self, now: Duration, verdicts: &[bool]) -> Due {
        let reached =
            |at: Option<Duration>| at.is_some_and(|at| now.saturating_add(self.slack) >= at);
        let changed = self
            .pushed_verdicts
            .as_deref()
            .is_some_and(|pushed| pushed != verdicts);
        Due {
            metrics: reached(self.metrics_at),
            services: self.services_at.is_some() && (reached(self.services_at) || changed),
        }
    }

    /// A metrics push landed at `now`.
    pub fn metrics_landed(&mut self, now: Duration) {
        if self.metrics_at.is_some() {
            self.metrics_at = Some(now.saturating_add(self.every));
        }
    }

    /// A services push with `verdicts` landed at `now`.
    pub fn services_landed(&mut self, now: Duration, verdicts: Vec<bool>) {
        if self.services_at.is_some() {
            self.services_at = Some(now.saturating_add(self.every));
            self.pushed_verdicts = Some(verdicts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// The beats (in seconds) that carry each push over `beats` beats
    /// every 30 s, each landing, the slot a little early or late.
    fn pushes(every: u64, beats: u64) -> (Vec<u64>, Vec<u64>) {
        let mut c = Cadence::new(true, true, S * every as u32, 30 * S);
        let (mut metrics, mut services) = (Vec::new(), Vec::new());
        for beat in 0..beats {
            let jitter = if beat % 2 == 0 {
                Duration::from_millis(3)
            } else {
                Duration::ZERO
            };
            let now = (S * 30 * beat as u32).saturating_sub(jitter);
            let due = c.due(now, &[true]);
            if due.metrics {
                metrics.push(beat);
                c.metrics_landed(now);
            }
            if due.services {
                services.push(beat);
                c.services_landed(now, vec![true]);
            }
        }
        (metrics, services)
    }

    #[test]
    fn pushes_go_every_tenth_beat_at_the_default_and_every_beat_when_equal() {
        let (metrics, services) = pushes(300, 25);
        assert_eq!(metrics, [1, 11, 21]);
        assert_eq!(services, [0, 10, 20]);
        let (metrics, services) = pushes(30, 4);
        assert_eq!(metrics, [1, 2, 3]);
        assert_eq!(services, [0, 1, 2, 3]);
    }

    #[test]
    fn a_failed_push_stays_due_and_a_changed_verdict_goes_at_once() {
        let mut c = Cadence::new(true, true, 300 * S, 30 * S);
        assert_eq!(
            c.due(Duration::ZERO, &[true]),
            Due {
                metrics: false,
                services: true
            }
        );
        c.services_landed(Duration::ZERO, vec![true]);
        // The metrics push at 30 s fails: due again at 60 s.
        assert!(c.due(30 * S, &[true]).metrics);
        assert!(c.due(60 * S, &[true]).metrics);
        c.metrics_landed(60 * S);
        assert_eq!(c.due(90 * S, &[true]), Due::default());
        assert!(
            c.due(120 * S, &[false]).services,
            "a check that fails goes at once"
        );
        c.services_landed(120 * S, vec![false]);
        assert!(!c.due(150 * S, &[false]).services);
        assert!(c.due(180 * S, &[true]).services, "and so does its recovery");
    }

    #[test]
    fn nothing_is_due_that_is_not_reported() {
        let mut c = Cadence::new(false, false, 30 * S, 30 * S);
        c.metrics_landed(S);
        assert_eq!(c.due(1000 * S, &[false]), Due::default());
    }
}
