//! What the agent says about the agent API's pushes: a refused body once
//! per reason, a push that failed after its beat landed once per run of
//! failures, and the push that lands after them.

use super::Said;
use crate::classify::Failure;
use crate::heartbeat::Reply;
use crate::push::{Endpoint, PerPush};
use crate::text;

/// What was said about each push.
#[derive(Debug, Default)]
pub struct Pushes {
    /// The last refusal said: the same one again is a debug line.
    refused: PerPush<Option<String>>,
    /// It failed after its beat and has not landed since.
    failing: PerPush<bool>,
    /// The server answered it with `"stored": false`.
    not_stored: PerPush<bool>,
}

impl Pushes {
    /// The server refused a push's body (400, 413). It recorded the beat
    /// first (or the heartbeat that follows does), so this is no outage:
    /// one warning per reason, since it stays wrong until someone acts.
    pub fn refused(&mut self, to: Endpoint, failure: &Failure, follows: Option<Endpoint>) -> Said {
        let mut said = Said::default();
        let Some(i) = to.push() else {
            return said;
        };
        let beat = match follows {
            Some(next) => format!("the beat goes as a {} instead", next.words()),
            None => "the beat itself landed".into(),
        };
        let line = format!(
            "the server refused the {}: {}{}; {beat}, and the next {} waits for its interval",
            to.words(),
            failure.reason,
            failure
                .hint
                .as_ref()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default(),
            to.words()
        );
        if self.refused[i].as_deref() == Some(failure.reason.as_str()) {
            said.debug(line);
        } else {
            said.warn(line);
            self.refused[i] = Some(failure.reason.clone());
        }
        self.failing[i] = false;
        said
    }

    /// A push landed. The server may have kept the beat and not the
    /// figures (`"stored": false`, a suspended server): said once, and
    /// once when it stores them again.
    pub fn landed(&mut self, to: Endpoint, reply: &Reply) -> Said {
        let mut said = Said::default();
        let Some(push) = to.push() else {
            return said;
        };
        if std::mem::take(&mut self.failing[push]) {
            said.info(format!("{} delivered again", to.words()));
        }
        self.refused[push] = None;
        let word = push.word();
        match (reply.stored, self.not_stored[push]) {
            (Some(false), false) => {
                let why = reply.reason.as_deref().unwrap_or("no reason given");
                said.warn(format!(
                    "the server recorded the beat but not the {word}: it says \"{}\"",
                    text::untrusted_max(why, 120)
                ));
                self.not_stored[push] = true;
            }
            (Some(true), true) => {
                said.info(format!("the server stores the {word} again"));
                self.not_stored[push] = false;
            }
            _ => {}
        }
        said
    }

    /// A push that followed the beat failed; the beat itself landed.
    pub fn failed(&mut self, to: Endpoint, failure: &Failure) -> Said {
        let mut said = Said::default();
        let Some(i) = to.push() else {
            return said;
        };
        let line = format!(
            "{} failed after the beat landed: {}; the next beat carries it",
            to.words(),
            failure.reason
        );
        if std::mem::replace(&mut self.failing[i], true) {
            said.debug(line);
        } else {
            said.warn(line);
        }
        said
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::Push;

    fn levels(said: &Said) -> Vec<log::Level> {
        said.lines.iter().map(|l| l.level).collect()
    }

    #[test]
    fn a_refusal_is_a_warning_once_per_reason() {
        let mut p = Pushes::default();
        let bad = Failure::fatal(
            "HTTP 400 Bad Request for POST http://h/api/agent/metrics/: server says \"field 'x'\""
                .into(),
            None,
        );
        let first = p.refused(
            Endpoint::Push(Push::Metrics),
            &bad,
            Some(Endpoint::Heartbeat),
        );
        assert_eq!(levels(&first), [log::Level::Warn]);
        assert!(
            first.lines[0]
                .text
                .starts_with("the server refused the metrics push: HTTP 400 Bad Request for POST")
                && first.lines[0]
                    .text
                    .contains("the beat goes as a heartbeat instead"),
            "{}",
            first.lines[0].text
        );
        assert_eq!(
            levels(&p.refused(
                Endpoint::Push(Push::Metrics),
                &bad,
                Some(Endpoint::Heartbeat)
            )),
            [log::Level::Debug]
        );
        let other = Failure::fatal("HTTP 413 Payload Too Large".into(), None);
        assert_eq!(
            levels(&p.refused(
                Endpoint::Push(Push::Metrics),
                &other,
                Some(Endpoint::Heartbeat)
            )),
            [log::Level::Warn]
        );
    }

    #[test]
    fn a_failing_follow_up_push_is_said_once_and_its_recovery_once() {
        let mut p = Pushes::default();
        let down = Failure::retryable("connection refused".into());
        assert_eq!(
            levels(&p.failed(Endpoint::Push(Push::Services), &down)),
            [log::Level::Warn]
        );
        assert_eq!(
            levels(&p.failed(Endpoint::Push(Push::Services), &down)),
            [log::Level::Debug]
        );
        let ok = Reply::default();
        let back = p.landed(Endpoint::Push(Push::Services), &ok);
        assert_eq!(back.lines[0].text, "services push delivered again");
        assert!(
            p.landed(Endpoint::Push(Push::Services), &ok)
                .lines
                .is_empty()
        );
    }

    #[test]
    fn figures_the_server_keeps_are_said_once_and_their_return_once() {
        let mut p = Pushes::default();
        let suspended = Reply {
            stored: Some(false),
            reason: Some("monitoring suspended".into()),
            ..Reply::default()
        };
        let said = p.landed(Endpoint::Push(Push::Metrics), &suspended);
        assert_eq!(levels(&said), [log::Level::Warn]);
        assert!(
            said.lines[0]
                .text
                .ends_with("it says \"monitoring suspended\"")
        );
        assert!(
            p.landed(Endpoint::Push(Push::Metrics), &suspended)
                .lines
                .is_empty()
        );
        let stored = Reply {
            stored: Some(true),
            ..Reply::default()
        };
        assert_eq!(
            levels(&p.landed(Endpoint::Push(Push::Metrics), &stored)),
            [log::Level::Info]
        );
        assert!(
            p.landed(Endpoint::Push(Push::Metrics), &stored)
                .lines
                .is_empty()
        );
    }
}
