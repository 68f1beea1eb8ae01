//! The narration's unit tests: lines and status texts for each event.
use super::*;
use std::time::UNIX_EPOCH;

fn at(secs: u64) -> At {
    At {
        now: Duration::from_secs(secs),
        wall: UNIX_EPOCH + Duration::from_secs(secs),
    }
}

fn timed_out() -> Failure {
    Failure {
        timed_out: true,
        ..Failure::retryable("no answer from h:80 within 1s".into())
    }
}

fn attempt(failure: &Failure, next: Next) -> Attempt<'_> {
    Attempt {
        failure,
        next,
        number: 1,
        budget: Duration::from_secs(1),
        checks_took: Duration::ZERO,
    }
}

#[test]
fn an_outage_matters_after_three_missed_beats_or_a_minute_or_at_once_if_fatal() {
    assert!(!matters(false, 2, Duration::from_secs(59)));
    assert!(matters(false, 3, Duration::ZERO));
    assert!(matters(false, 0, Duration::from_secs(60)));
    assert!(matters(true, 0, Duration::ZERO));
}

#[test]
fn a_timeout_cut_by_the_schedule_or_the_checks_says_so() {
    let mut n = Narrator::new(Role::Service, Duration::from_secs(10), true);
    let failure = timed_out();
    let said = n.failed(
        &attempt(&failure, Next::Slot(Duration::from_secs(1))),
        at(0),
    );
    assert_eq!(said.lines.len(), 1, "{said:?}");
    assert_eq!(
        said.lines[0].level,
        log::Level::Debug,
        "one blip is not a warning"
    );
    assert!(
        said.lines[0]
            .text
            .contains("(the attempt was cut to 1s by the schedule: timeout 10s"),
        "{said:?}"
    );
    let checks = Attempt {
        checks_took: Duration::from_secs(2),
        ..attempt(&failure, Next::Slot(Duration::from_secs(3)))
    };
    let said = n.failed(&checks, at(1));
    assert!(
        said.lines[0].text.contains("the health checks took 2s"),
        "{said:?}"
    );
    // Not verbose: the debug line is not even worded.
    let mut quiet = Narrator::new(Role::Service, Duration::from_secs(10), false);
    let said = quiet.failed(
        &attempt(&failure, Next::Slot(Duration::from_secs(1))),
        at(0),
    );
    assert!(said.lines.is_empty());
    assert!(
        said.status
            .is_some_and(|s| s.starts_with("failing since 00:00:00 UTC"))
    );
}

#[test]
fn a_server_name_cannot_forge_a_line() {
    let mut n = Narrator::new(Role::Service, Duration::from_secs(5), false);
    let reply = Reply {
        server_name: Some("Box\n<0>EMERGENCY \u{1b}[2J".into()),
        ..Reply::default()
    };
    let said = n.delivered("h:80", &reply, Duration::from_millis(10), at(0));
    assert_eq!(said.lines[0].level, log::Level::Info);
    assert!(
        said.lines[0]
            .text
            .contains("server \"Box\\n<0>EMERGENCY \\u{1b}[2J\""),
        "{said:?}"
    );
    assert_eq!(said.status.as_deref(), Some("last beat 00:00:00 ok"));
}

#[test]
fn recovery_after_a_warned_outage_is_one_info_line() {
    let mut n = Narrator::new(Role::Service, Duration::from_secs(5), false);
    let failure = Failure::retryable("refused".into());
    for beat in 0..3 {
        let said = n.failed(&attempt(&failure, Next::Slot(Duration::ZERO)), at(beat * 2));
        let loud = said
            .lines
            .iter()
            .filter(|l| l.level <= log::Level::Warn)
            .count();
        assert_eq!(loud, usize::from(beat == 2), "beat {beat}: {said:?}");
        n.gave_up(&failure, 1, at(beat * 2));
    }
    let said = n.delivered("h:80", &Reply::default(), Duration::ZERO, at(7));
    assert_eq!(
        said.lines[0].text,
        "heartbeat delivered again to h:80: down for 7s, 3 beat(s) missed"
    );
    assert_eq!(n.missed(), 0);
}
