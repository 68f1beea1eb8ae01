//! The loop against a fake clock, a scripted server and scripted checks.

mod rig;

use super::*;
use crate::narrate::Line;
use crate::push::Push;
use rig::*;

#[test]
fn checks_leave_the_beat_its_timeout_or_half_the_slot() {
    let s = Duration::from_secs;
    assert_eq!(checks_share(s(30), s(10)), s(20));
    assert_eq!(checks_share(s(3), s(10)), Duration::from_millis(1500));
    assert_eq!(checks_share(s(30), s(60)), s(15));
    assert_eq!(checks_share(Duration::ZERO, s(10)), Duration::ZERO);
}

#[test]
fn failing_checks_withhold_beats_in_their_slots_and_passing_ones_resume_them() {
    let (a, rig) = AgentSpec::every(10.0).timeout(5.0).took(0.1).build();
    let (g, limits) = gate(&rig, 1.0, vec![true, false, false, true], false);
    let mut a = a.with_gate(g);
    let ends = beats(&mut a, 5);
    let delivered: Vec<bool> = ends.iter().map(|e| e.delivered).collect();
    assert_eq!(delivered, [true, false, false, true, true]);
    // Checks at 0, 10, 20, 30, 40; a beat after each passing run, 1 s in.
    assert!(close(&rig.times(), &[1.0, 31.0, 41.0]), "{:?}", rig.times());
    let said = rig.said();
    let loud = shown(&said);
    assert_eq!(
        loud,
        [
            "first heartbeat accepted by h:80 (100ms)",
            "check tcp db:5432 failed: refused; heartbeat withheld",
            "all checks pass again after 20s; 2 heartbeat(s) were withheld",
        ]
    );
    assert!(
        rig.statuses
            .borrow()
            .iter()
            .any(|s| s.starts_with("withholding heartbeats: check tcp db:5432 failed"))
    );
    assert_eq!(
        a.narrator.missed(),
        0,
        "withheld beats are not delivery failures"
    );
    // Each run may take the slot less the beat's share: its 5 s timeout.
    assert_eq!(limits.borrow()[1], S(5.0));
    assert!(rig.budgets().iter().all(|b| *b == S(5.0)));
    assert!(
        rig.bodies
            .borrow()
            .iter()
            .all(|b| b == &crate::push::body::heartbeat())
    );
}

#[test]
fn slow_checks_shorten_the_beat_not_the_schedule() {
    let (a, rig) = AgentSpec::every(2.0).timeout(10.0).build();
    let (g, _) = gate(&rig, 1.5, vec![], false);
    let mut a = a.with_gate(g);
    beats(&mut a, 3);
    // Checks that would take 1.5 s of a 2 s slot get 1 s: the beat keeps
    // half the slot (less than its 10 s timeout).
    assert!(close(&rig.times(), &[1.0, 3.0, 5.0]), "{:?}", rig.times());
    assert_eq!(rig.budgets()[1], S(1.0));
}

#[test]
fn with_reporting_a_failing_check_changes_the_body_not_the_beat() {
    let (a, rig) = AgentSpec::every(10.0).timeout(5.0).took(0.1).build();
    let (g, _) = gate(&rig, 0.0, vec![false, true], true);
    let mut a = a.with_gate(g);
    let ends = beats(&mut a, 2);
    assert!(ends.iter().all(|e| e.delivered));
    assert_eq!(*rig.bodies.borrow(), ["ok=false", "ok=true"]);
}

#[test]
fn pushes_carry_the_beat_and_each_is_answered_to_the_gate() {
    let (a, rig) = AgentSpec::every(10.0).timeout(5.0).took(0.1).build();
    let (mut g, _) = gate(&rig, 0.0, vec![false], false);
    g.pushes = true;
    let answered = g.answered.clone();
    let mut a = a.with_gate(g);
    let ends = beats(&mut a, 2);
    // A failing check does not withhold the beat: it goes as a service.
    assert!(ends.iter().all(|e| e.delivered));
    assert_eq!(
        *rig.bodies.borrow(),
        ["metrics", "services", "metrics", "services"]
    );
    let kinds = answered.borrow().clone();
    assert_eq!(
        kinds,
        [
            Endpoint::Push(Push::Metrics),
            Endpoint::Push(Push::Services),
            Endpoint::Push(Push::Metrics),
            Endpoint::Push(Push::Services)
        ]
    );
    let lines = rig.said();
    let said = shown(&lines);
    assert!(
        said[0].contains("pushed to the server as a failed service"),
        "{said:?}"
    );
}

#[test]
fn a_refused_push_is_said_once_and_the_beat_still_lands() {
    let (mut a, rig) = AgentSpec::every(10.0).timeout(5.0).took(0.1).build();
    a.transport.refuse_pushes = true;
    let (mut g, _) = gate(&rig, 0.0, vec![], false);
    g.pushes = true;
    let answered = g.answered.clone();
    let mut a = a.with_gate(g);
    let ends = beats(&mut a, 2);
    assert!(ends.iter().all(|e| e.delivered), "{ends:?}");
    // Metrics refused, then services refused, then the plain heartbeat.
    let bodies = rig.bodies.borrow().clone();
    assert_eq!(bodies.len(), 6, "{bodies:?}");
    assert_eq!(bodies[2], crate::push::body::heartbeat());
    assert_eq!(a.failures, 0, "a refused body is not a failed beat");
    let warned: Vec<String> = rig
        .said()
        .into_iter()
        .filter(|l| l.level == log::Level::Warn)
        .map(|l| l.text)
        .collect();
    assert_eq!(warned.len(), 2, "one per kind, not per beat: {warned:#?}");
    assert!(
        warned[0].starts_with("the server refused the metrics push: HTTP 400")
            && warned[0].contains("the beat goes as a services push instead"),
        "{}",
        warned[0]
    );
    assert!(
        warned[1].contains("the beat goes as a heartbeat instead"),
        "{}",
        warned[1]
    );
    let pushes = answered
        .borrow()
        .iter()
        .filter(|to| **to != Endpoint::Heartbeat)
        .count();
    assert_eq!(
        pushes, 4,
        "each refused push is answered: it waits for its interval"
    );
}

#[test]
fn a_push_after_the_beat_fails_alone() {
    // The metrics push lands; the services push after it is refused by the network.
    let (a, rig) = AgentSpec::every(10.0)
        .timeout(5.0)
        .script(vec![Ok(()), unavailable()])
        .took(0.1)
        .build();
    let (mut g, _) = gate(&rig, 0.0, vec![], false);
    g.pushes = true;
    let answered = g.answered.clone();
    let mut a = a.with_gate(g);
    let end = a.next_beat();
    assert!(end.delivered);
    assert_eq!(
        rig.times().len(),
        2,
        "one attempt at the follow-up, no retries"
    );
    assert_eq!(
        *answered.borrow(),
        [Endpoint::Push(Push::Metrics)],
        "the services push stays due"
    );
    let lines = rig.said();
    let said = shown(&lines);
    assert!(
        said.iter()
            .any(|l| l.starts_with("services push failed after the beat landed: test")),
        "{said:#?}"
    );
}

#[test]
fn a_long_check_failure_is_summarised_like_a_long_outage() {
    let (a, rig) = AgentSpec::every(1.0).timeout(0.5).build();
    let (g, _) = gate(&rig, 0.0, vec![false; 150], false);
    let mut a = a.with_gate(g);
    for _ in 0..150 {
        a.next_beat();
    }
    // The first line, then at 10 and 100 withheld beats.
    let said = rig.said();
    let loud = shown(&said);
    assert_eq!(loud.len(), 3, "{loud:#?}");
    assert!(
        loud[1].starts_with("still withholding heartbeats since 00:00:00 UTC (9s): 10 withheld"),
        "{}",
        loud[1]
    );
    assert!(loud[2].contains(": 100 withheld"), "{}", loud[2]);
    assert_eq!(a.narrator.withheld(), 150);
    assert!(rig.times().is_empty());
}

#[test]
fn beat_zero_is_at_start_then_beats_follow_the_phase_grid() {
    // Phase 2.5 s of 10: beat zero at 0, the next slot at least 5 s on is 12.5.
    let (mut a, rig) = AgentSpec::every(10.0)
        .timeout(5.0)
        .phase(0.25)
        .took(0.2)
        .build();
    let ends = beats(&mut a, 4);
    assert!(ends.iter().all(|e| e.delivered));
    assert!(
        close(&rig.times(), &[0.0, 12.5, 22.5, 32.5]),
        "{:?}",
        rig.times()
    );
}

#[test]
fn a_small_phase_never_sends_two_beats_back_to_back() {
    let (mut a, rig) = AgentSpec::every(10.0).timeout(5.0).phase(0.01).build();
    beats(&mut a, 3);
    assert!(close(&rig.times(), &[0.0, 10.1, 20.1]), "{:?}", rig.times());
}

#[test]
fn slow_replies_do_not_drift_the_schedule() {
    let (mut a, rig) = AgentSpec::every(1.0).timeout(10.0).took(0.3).build();
    beats(&mut a, 6);
    assert!(
        close(&rig.times(), &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
        "{:?}",
        rig.times()
    );
}

#[test]
fn retries_back_off_within_the_slot_then_the_grid_resumes() {
    let (mut a, rig) = AgentSpec::every(30.0)
        .timeout(5.0)
        .script(vec![unavailable(), unavailable()])
        .build();
    let ends = beats(&mut a, 2);
    assert_eq!(
        ends[0],
        BeatEnd {
            delivered: true,
            next: S(30.0)
        }
    );
    let t = rig.times();
    assert_eq!(t.len(), 4, "{t:?}");
    assert!((0.5..1.5).contains(&(t[1] - t[0])), "first retry {t:?}");
    assert!((1.0..3.0).contains(&(t[2] - t[1])), "second retry {t:?}");
    assert_eq!(t[3], 30.0);
    assert_eq!(a.failures, 0);
    assert_eq!(
        a.narrator.missed(),
        0,
        "retries that land within the slot miss nothing"
    );
}

#[test]
fn a_fatal_failure_waits_for_the_next_slot_and_counts_as_missed() {
    let (mut a, rig) = AgentSpec::every(30.0)
        .timeout(5.0)
        .script(vec![failure(Class::Fatal, None)])
        .build();
    let end = a.next_beat();
    assert_eq!(
        end,
        BeatEnd {
            delivered: false,
            next: S(30.0)
        }
    );
    assert_eq!(a.narrator.missed(), 1);
    a.next_beat();
    assert!(close(&rig.times(), &[0.0, 30.0]));
    assert_eq!(a.narrator.missed(), 0, "reset once a beat lands");
}

#[test]
fn retry_after_past_the_next_slot_holds_back_slots_and_counts_them() {
    let (mut a, rig) = AgentSpec::every(30.0)
        .timeout(5.0)
        .script(vec![failure(Class::Retryable, Some(S(70.0)))])
        .build();
    let end = a.next_beat();
    assert_eq!(end.next, S(90.0));
    // Beat zero and the held-back slots at 30 and 60.
    assert_eq!(a.narrator.missed(), 3);
    a.next_beat();
    assert!(close(&rig.times(), &[0.0, 90.0]), "{:?}", rig.times());
}

#[test]
fn retry_after_within_the_slot_is_honoured() {
    let (mut a, rig) = AgentSpec::every(30.0)
        .timeout(5.0)
        .script(vec![failure(Class::Retryable, Some(S(4.0)))])
        .build();
    a.next_beat();
    let t = rig.times();
    assert!(t[1] >= 4.0 && t[1] < 6.0, "{t:?}");
}

#[test]
fn a_late_wake_skips_slots_instead_of_bunching_them() {
    let (mut a, rig) = AgentSpec::every(1.0).timeout(0.5).build();
    beats(&mut a, 2);
    // The sleep towards the slot at 2 s overruns by 3.5 s (SIGSTOP).
    rig.clock.stall.set(Some((S(2.0), S(3.5))));
    // Woke at 5.5: slots 3, 4, 5 went by; one beat now, the grid after.
    beats(&mut a, 3);
    assert!(
        close(&rig.times(), &[0.0, 1.0, 5.5, 6.0, 7.0]),
        "{:?}",
        rig.times()
    );
}

#[test]
fn an_attempt_gets_no_more_than_the_time_left_before_the_next_slot() {
    // A 10 s timeout at a 1 s interval: each attempt is cut to the slot.
    let (mut a, rig) = AgentSpec::every(1.0).timeout(10.0).build();
    beats(&mut a, 3);
    assert!(
        rig.budgets().iter().all(|b| *b <= S(1.0)),
        "{:?}",
        rig.budgets()
    );
    // And never below the minimum worth starting.
    let (mut a, rig) = AgentSpec::every(30.0).timeout(0.01).build();
    a.next_beat();
    assert_eq!(rig.budgets(), [backoff::MIN_ATTEMPT]);
}

#[test]
fn in_a_long_outage_each_slot_gets_one_attempt() {
    let script = (0..200).map(|_| unavailable()).collect();
    let (mut a, rig) = AgentSpec::every(30.0).timeout(5.0).script(script).build();
    beats(&mut a, 20);
    let late: Vec<f64> = rig.times().into_iter().filter(|t| *t >= 300.0).collect();
    // Once the backoff passes the interval, only the scheduled beats go out.
    assert!(
        close(
            &late,
            &[
                300.0, 330.0, 360.0, 390.0, 420.0, 450.0, 480.0, 510.0, 540.0, 570.0
            ]
        ),
        "{late:?}"
    );
    assert_eq!(a.narrator.missed(), 20);
}

/// The lines a person sees without -v.
fn shown(lines: &[Line]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.level <= log::Level::Info)
        .map(|l| l.text.as_str())
        .collect()
}

#[test]
fn a_lossy_link_logs_an_hourly_summary_not_a_line_per_blip() {
    // Every third beat needs one retry, every seventh is lost altogether:
    // a flaky LTE link, for three hours at 30 s.
    let mut script = Vec::new();
    for beat in 0..360 {
        if beat % 7 == 3 {
            // Five attempts fill a 30 s slot (backoff 1, 2, 4, 8, 16 s).
            script.extend(vec![unavailable(); 5]);
        } else if beat % 3 == 1 {
            script.push(unavailable());
        }
        script.push(Ok(()));
    }
    let (mut a, rig) = AgentSpec::every(30.0).timeout(5.0).script(script).build();
    while rig.clock.elapsed() < S(3.0 * 3600.0) {
        a.next_beat();
    }
    let lines = rig.said();
    let loud = shown(&lines);
    let warnings = lines.iter().filter(|l| l.level <= log::Level::Warn).count();
    assert_eq!(warnings, 0, "{loud:#?}");
    let summaries: Vec<&&str> = loud
        .iter()
        .filter(|l| l.contains("short interruption"))
        .collect();
    assert!((2..=3).contains(&summaries.len()), "{loud:#?}");
    assert!(summaries[0].contains("beat(s) missed"), "{}", summaries[0]);
}

#[test]
fn an_outage_is_a_warning_once_it_misses_three_beats_or_a_minute() {
    // At 2 s three missed beats come first; at 30 s the minute does.
    for (interval, says) in [(2.0, "3 beat(s) missed)"), (30.0, "(failing for 1m,")] {
        let script = vec![unavailable(); 200];
        let (mut a, rig) = AgentSpec::every(interval)
            .timeout(1.0)
            .script(script)
            .build();
        let mut ends = Vec::new();
        while ends.len() < 6 && rig.clock.elapsed() < S(600.0) {
            ends.push(a.next_beat());
            if rig
                .lines
                .borrow()
                .iter()
                .any(|l| l.level <= log::Level::Info)
            {
                break;
            }
        }
        let lines = rig.said();
        let loud = shown(&lines);
        assert_eq!(loud.len(), 1, "{interval}: {loud:#?}");
        assert!(
            loud[0].starts_with("heartbeat failed: test;"),
            "{}",
            loud[0]
        );
        assert!(loud[0].contains(says), "{interval}: {}", loud[0]);
    }
}

#[test]
fn a_day_long_outage_logs_a_few_lines_not_one_per_beat() {
    let script = (0..20_000).map(|_| unavailable()).collect();
    let (mut a, rig) = AgentSpec::every(30.0).timeout(5.0).script(script).build();
    while rig.clock.elapsed() < S(86_400.0) {
        a.next_beat();
    }
    let lines = rig.said();
    let loud = shown(&lines);
    assert!(
        (20..=30).contains(&loud.len()),
        "{} lines: {loud:#?}",
        loud.len()
    );
    assert!(
        loud[0].starts_with("heartbeat failed: test;"),
        "{}",
        loud[0]
    );
    assert!(
        loud[1].starts_with("still failing since 00:00:00 UTC (4m"),
        "{}",
        loud[1]
    );
    assert!(
        loud[1].contains(": 10 beat(s) missed; last error: test"),
        "{}",
        loud[1]
    );
    assert!(loud[2].contains(": 100 beat(s) missed"), "{}", loud[2]);
    // Then at least hourly: no gap between lines over an hour of beats.
    assert!(
        loud.iter()
            .skip(3)
            .all(|l| l.starts_with("still failing since 00:00:00 UTC"))
    );

    // Recovery is one line, and a new outage starts the cadence again.
    let (mut a, rig) = AgentSpec::every(30.0)
        .timeout(5.0)
        .script(vec![unavailable(); 30])
        .build();
    // 30 failed attempts miss 10+ beats: first line, one summary, recovery.
    while rig.clock.elapsed() < S(1200.0) {
        a.next_beat();
    }
    let lines = rig.said();
    let loud = shown(&lines);
    assert_eq!(loud.len(), 3, "{loud:#?}");
    assert!(
        loud[2].starts_with("heartbeat delivered again to h:80: down for"),
        "{}",
        loud[2]
    );
}

#[test]
fn once_logs_only_its_final_outcome() {
    let script = (0..50).map(|_| unavailable()).collect();
    let (mut a, rig) = AgentSpec::every(3.0)
        .timeout(1.0)
        .script(script)
        .once()
        .build();
    a.once();
    let lines = rig.said();
    let loud = shown(&lines);
    assert_eq!(loud.len(), 1, "{lines:#?}");
    assert!(loud[0].contains("giving up after"), "{}", loud[0]);
    assert!(lines.len() > 1, "the attempts are there at debug level");
    let (mut a, rig) = AgentSpec::every(3.0).timeout(1.0).once().build();
    a.once();
    assert!(shown(&rig.said()).is_empty(), "success is silent");
}

#[test]
fn once_retries_within_one_interval_then_gives_up() {
    let script = (0..50).map(|_| unavailable()).collect();
    let (mut a, rig) = AgentSpec::every(3.0)
        .timeout(1.0)
        .script(script)
        .once()
        .build();
    assert!(!a.once());
    let t = rig.times();
    assert!(t.len() >= 2, "{t:?}");
    assert!(t.iter().all(|t| *t < 3.0), "{t:?}");
    assert!(rig.clock.elapsed() < S(3.0));

    let (mut a, _) = AgentSpec::every(3.0).timeout(1.0).once().build();
    assert!(a.once());
}
