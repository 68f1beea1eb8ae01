//! The slot grid: when beats are due, as offsets from the agent's start.
//!
//! Beat zero goes out at start. After it, slots sit at `phase + k * interval`
//! (k = 0, 1, ...), each computed from the start rather than from the last
//! beat, so however long requests take the schedule never drifts. The phase
//! is drawn once per process from `[0, interval)` so agents that boot in the
//! same second (a rack after a power cut) do not beat in lockstep forever.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    interval: Duration,
    phase: Duration,
}

impl Schedule {
    /// `unit` in `[0, 1)` picks the phase; `None` means no splay (phase 0).
    pub fn new(interval: Duration, unit: Option<f64>) -> Schedule {
        let phase = match unit {
            Some(u) => interval.mul_f64(u.clamp(0.0, 1.0)).min(interval),
            None => Duration::ZERO,
        };
        // A phase equal to the interval is the same grid as phase zero.
        let phase = if phase >= interval {
            Duration::ZERO
        } else {
            phase
        };
        Schedule { interval, phase }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn phase(&self) -> Duration {
        self.phase
    }

    fn slot(&self, k: u128) -> Duration {
        let nanos = self.phase.as_nanos() + k * self.interval.as_nanos();
        duration_from_nanos(nanos)
    }

    /// The first slot strictly after `elapsed`: the deadline for the beat
    /// now under way and the time of the next one.
    pub fn next_slot_after(&self, elapsed: Duration) -> Duration {
        if elapsed < self.phase {
            return self.phase;
        }
        let k = (elapsed - self.phase).as_nanos() / self.interval.as_nanos() + 1;
        self.slot(k)
    }

    /// The first slot at or after `t`.
    pub fn first_slot_at_or_after(&self, t: Duration) -> Duration {
        if t <= self.phase {
            return self.phase;
        }
        let since = (t - self.phase).as_nanos();
        let k = since.div_ceil(self.interval.as_nanos());
        self.slot(k)
    }

    /// How many slots lie in `(after, up_to]`: beats skipped because the
    /// agent was busy or asleep past them.
    pub fn slots_in(&self, after: Duration, up_to: Duration) -> u64 {
        if up_to <= after {
            return 0;
        }
        let count_up_to = |t: Duration| -> u128 {
            if t < self.phase {
                0
            } else {
                (t - self.phase).as_nanos() / self.interval.as_nanos() + 1
            }
        };
        u64::try_from(count_up_to(up_to) - count_up_to(after)).unwrap_or(u64::MAX)
    }
}

fn duration_from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    Duration::new(secs, (nanos % NANOS_PER_SEC) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(f64) -> Duration = Duration::from_secs_f64;

    #[test]
    fn without_splay_slots_are_multiples_of_the_interval() {
        let s = Schedule::new(S(30.0), None);
        assert_eq!(s.next_slot_after(Duration::ZERO), S(30.0));
        assert_eq!(s.next_slot_after(S(29.9)), S(30.0));
        assert_eq!(s.next_slot_after(S(30.0)), S(60.0));
    }

    #[test]
    fn the_phase_offsets_every_slot_and_is_below_the_interval() {
        let s = Schedule::new(S(10.0), Some(0.25));
        assert_eq!(s.phase(), S(2.5));
        assert_eq!(s.next_slot_after(Duration::ZERO), S(2.5));
        assert_eq!(s.next_slot_after(S(2.5)), S(12.5));
        assert_eq!(s.next_slot_after(S(100.0)), S(102.5));
        assert_eq!(Schedule::new(S(10.0), Some(1.0)).phase(), Duration::ZERO);
        assert_eq!(Schedule::new(S(10.0), Some(-3.0)).phase(), Duration::ZERO);
    }

    #[test]
    fn the_first_slot_is_the_phase() {
        for unit in [0.0, 0.001, 0.5, 0.999_999] {
            let s = Schedule::new(S(1.0), Some(unit));
            assert_eq!(s.first_slot_at_or_after(Duration::ZERO), s.phase());
            assert_eq!(s.first_slot_at_or_after(s.phase()), s.phase());
            assert!(s.phase() < S(1.0));
        }
    }

    #[test]
    fn no_drift_after_a_million_slots() {
        // 0.1 s is not exact in binary floating point; integer nanoseconds are.
        let s = Schedule::new(S(0.1), Some(0.5));
        let mut t = Duration::ZERO;
        for _ in 0..1_000_000 {
            t = s.next_slot_after(t);
        }
        assert_eq!(
            t,
            Duration::from_millis(50) + Duration::from_secs(100_000) - S(0.1)
        );
    }

    #[test]
    fn a_late_wake_skips_slots_instead_of_bunching_them() {
        let s = Schedule::new(S(10.0), Some(0.5));
        // Due at 15, woke at 47: slots 25, 35 and 45 went by.
        assert_eq!(s.slots_in(S(15.0), S(47.0)), 3);
        assert_eq!(s.next_slot_after(S(47.0)), S(55.0));
        assert_eq!(s.slots_in(S(15.0), S(15.0)), 0);
        assert_eq!(s.slots_in(S(0.0), S(5.0)), 1);
        assert_eq!(s.slots_in(S(0.0), S(4.9)), 0);
    }

    #[test]
    fn first_slot_at_or_after_rounds_up_onto_the_grid() {
        let s = Schedule::new(S(10.0), Some(0.5));
        assert_eq!(s.first_slot_at_or_after(S(5.0)), S(5.0));
        assert_eq!(s.first_slot_at_or_after(S(5.1)), S(15.0));
        assert_eq!(s.first_slot_at_or_after(S(1.0)), S(5.0));
    }
}
