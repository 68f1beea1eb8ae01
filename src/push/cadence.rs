//! When a beat carries a push instead of a plain heartbeat: a pure
//! decision from the time, tested without a clock.
//!
//! A push is due once `every` has passed since the last one that landed
//! (a failed push stays due, so the next beat tries again). Beats keep
//! their own schedule, so "passed" allows half a beat interval of slack:
//! a push every 300 s at 30 s beats goes out every tenth beat, not every
//! eleventh when a beat comes a millisecond early. The first push of a
//! sampled kind (metrics) waits for the first beat after beat zero, so its
//! CPU share and rates cover a real interval; the others go at once, and
//! one that follows the checks (services) again as soon as a check's
//! verdict changes.

use std::time::Duration;

use super::{PerPush, Push};

#[derive(Debug)]
pub struct Cadence {
    every: PerPush<Duration>,
    slack: Duration,
    /// When the next push of each kind is due (None: not reported).
    next: PerPush<Option<Duration>>,
    /// The verdicts the server last got.
    pushed_verdicts: Option<Vec<bool>>,
}

impl Cadence {
    /// The pushes `on`, each every `every` at beats `interval` apart.
    /// `resumed`: a sampled push has its previous sample already (one an
    /// earlier run kept), so it too goes at once.
    pub fn new(
        on: PerPush<bool>,
        every: PerPush<Duration>,
        interval: Duration,
        resumed: bool,
    ) -> Cadence {
        Cadence {
            every,
            slack: interval / 2,
            // Beat zero is at 0 and the next one at least half an interval
            // on: with the slack, the first beat that reaches `interval`.
            next: PerPush::from_fn(|push| {
                on[push].then_some(if push.sampled() && !resumed {
                    interval
                } else {
                    Duration::ZERO
                })
            }),
            pushed_verdicts: None,
        }
    }

    /// What a beat at `now` carries, given its checks' verdicts.
    pub fn due(&self, now: Duration, verdicts: &[bool]) -> PerPush<bool> {
        let changed = self
            .pushed_verdicts
            .as_deref()
            .is_some_and(|pushed| pushed != verdicts);
        PerPush::from_fn(|push| {
            self.next[push].is_some_and(|at| {
                now.saturating_add(self.slack) >= at || (changed && push.follows_checks())
            })
        })
    }

    /// A push that went with the beat at `now` landed (or was refused, and
    /// waits for its interval all the same), carrying `verdicts`.
    pub fn landed(&mut self, push: Push, now: Duration, verdicts: &[bool]) {
        if self.next[push].is_some() {
            self.next[push] = Some(now.saturating_add(self.every[push]));
            if push.follows_checks() {
                self.pushed_verdicts = Some(verdicts.to_vec());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Push::{Metrics, Services};

    const S: Duration = Duration::from_secs(1);

    fn both() -> PerPush<bool> {
        PerPush::from_fn(|p| matches!(p, Metrics | Services))
    }

    fn only(push: Push) -> PerPush<bool> {
        PerPush::from_fn(|p| p == push)
    }

    /// The beats (in seconds) that carry each push over `beats` beats
    /// every 30 s, each landing, the slot a little early or late.
    fn pushes(every: u64, beats: u64) -> (Vec<u64>, Vec<u64>) {
        let mut c = Cadence::new(
            both(),
            PerPush::from_fn(|_| S * every as u32),
            30 * S,
            false,
        );
        let (mut metrics, mut services) = (Vec::new(), Vec::new());
        for beat in 0..beats {
            let jitter = if beat % 2 == 0 {
                Duration::from_millis(3)
            } else {
                Duration::ZERO
            };
            let now = (S * 30 * beat as u32).saturating_sub(jitter);
            let due = c.due(now, &[true]);
            if due[Metrics] {
                metrics.push(beat);
                c.landed(Metrics, now, &[true]);
            }
            if due[Services] {
                services.push(beat);
                c.landed(Services, now, &[true]);
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
        let mut c = Cadence::new(both(), PerPush::from_fn(|_| 300 * S), 30 * S, false);
        assert_eq!(c.due(Duration::ZERO, &[true]), only(Services));
        c.landed(Services, Duration::ZERO, &[true]);
        // The metrics push at 30 s fails: due again at 60 s.
        assert!(c.due(30 * S, &[true])[Metrics]);
        assert!(c.due(60 * S, &[true])[Metrics]);
        c.landed(Metrics, 60 * S, &[true]);
        assert_eq!(c.due(90 * S, &[true]), PerPush::default());
        assert_eq!(
            c.due(120 * S, &[false]),
            only(Services),
            "a check that fails goes at once"
        );
        c.landed(Services, 120 * S, &[false]);
        assert!(!c.due(150 * S, &[false])[Services]);
        assert!(
            c.due(180 * S, &[true])[Services],
            "and so does its recovery"
        );
    }

    #[test]
    fn each_push_keeps_its_own_interval() {
        let every = PerPush::from_fn(|p| if p == Metrics { 30 * S } else { 60 * S });
        let mut c = Cadence::new(both(), every, 30 * S, false);
        let (mut metrics, mut services) = (Vec::new(), Vec::new());
        for beat in 0..7u32 {
            let now = 30 * S * beat;
            let due = c.due(now, &[true]);
            for (push, seen) in [(Metrics, &mut metrics), (Services, &mut services)] {
                if due[push] {
                    seen.push(beat);
                    c.landed(push, now, &[true]);
                }
            }
        }
        assert_eq!(metrics, [1, 2, 3, 4, 5, 6]);
        assert_eq!(services, [0, 2, 4, 6]);
    }

    #[test]
    fn a_resumed_sample_lets_metrics_go_with_the_first_beat() {
        let every = PerPush::from_fn(|_| 30 * S);
        let c = Cadence::new(both(), every, 30 * S, true);
        assert_eq!(c.due(Duration::ZERO, &[true]), both());
    }

    #[test]
    fn nothing_is_due_that_is_not_reported() {
        let mut c = Cadence::new(
            PerPush::default(),
            PerPush::from_fn(|_| 30 * S),
            30 * S,
            false,
        );
        c.landed(Metrics, S, &[true]);
        assert_eq!(c.due(1000 * S, &[false]), PerPush::default());
    }
}
