//! The `report` setting: what `--report` adds to a beat's body, and which
//! of the agent API's pushes replace a beat.

use crate::push::{PerPush, Push};
use crate::text;

/// What `--report` turns on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reporting {
    /// `status` and `checks` (and `job` for `run`); a failing check then
    /// sends `"status": "fail"` instead of withholding the beat.
    pub status: bool,
    /// `host`: uptime, load, memory, disks, the agent's RSS.
    pub vitals: bool,
    /// The agent API's pushes (`metrics`, `services`, ...), each in place
    /// of a beat every `metrics_interval` or `services_interval`.
    pub pushes: PerPush<bool>,
    /// `auto`: the pushes are chosen from the API and the checks when the
    /// config is loaded (config::pushes::settle).
    pub auto: bool,
}

impl Reporting {
    /// The default: the pushes the server's own agent makes, where they can go.
    pub const AUTO: Reporting = Reporting {
        status: false,
        vitals: false,
        pushes: PerPush::NONE,
        auto: true,
    };

    /// `auto`, `off`, or any of `status`, `vitals` and the pushes' words,
    /// comma-separated (`auto` may join them).
    pub fn parse(text: &str) -> Result<Reporting, String> {
        let mut reporting = Reporting::default();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let word = word.to_ascii_lowercase();
            match word.as_str() {
                "auto" => reporting.auto = true,
                "status" => reporting.status = true,
                "vitals" => reporting.vitals = true,
                "off" | "none" => {}
                other => match Push::from_word(other) {
                    Some(push) => reporting.pushes[push] = true,
                    None => {
                        return Err(format!(
                            "has \"{}\"; expected auto, off, or status, vitals, {} \
                             (comma-separated, e.g. metrics,services)",
                            text::untrusted_max(&word, 40),
                            or_list(Push::ALL.map(Push::word).as_slice())
                        ));
                    }
                },
            }
        }
        Ok(reporting)
    }

    /// Something to do before a beat: a body to compose or a push to make.
    pub fn is_on(self) -> bool {
        self.status || self.vitals || self.pushes.any()
    }

    /// As `--check` and the start-up line show it: once settled, what
    /// `auto` chose, marked as such.
    pub fn words(self) -> String {
        let words: Vec<&str> = [("status", self.status), ("vitals", self.vitals)]
            .into_iter()
            .chain(self.pushes.iter().map(|(p, on)| (p.word(), *on)))
            .filter_map(|(w, on)| on.then_some(w))
            .collect();
        match (words.is_empty(), self.auto) {
            (true, false) => "off".into(),
            (true, true) => "auto (off)".into(),
            (false, false) => words.join(","),
            (false, true) => format!("auto ({})", words.join(",")),
        }
    }
}

/// "a, b or c".
fn or_list(words: &[&str]) -> String {
    match words.split_last() {
        None => String::new(),
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_words_are_read_in_any_order_and_mistakes_named() {
        let both = Reporting {
            status: true,
            vitals: true,
            ..Reporting::default()
        };
        assert_eq!(Reporting::parse("status,vitals"), Ok(both));
        assert_eq!(Reporting::parse(" Vitals , status "), Ok(both));
        assert_eq!(Reporting::parse("off"), Ok(Reporting::default()));
        assert_eq!(Reporting::parse("auto"), Ok(Reporting::AUTO));
        assert_eq!(Reporting::AUTO.words(), "auto (off)");
        let chose = Reporting {
            pushes: PerPush::from_fn(|p| p == Push::Metrics),
            ..Reporting::AUTO
        };
        assert_eq!(chose.words(), "auto (metrics)");
        let err = Reporting::parse("status,cpu").unwrap_err();
        assert!(err.contains("\"cpu\"") && err.contains("expected"), "{err}");
    }

    #[test]
    fn pushes_are_words_of_their_own() {
        let pushes = Reporting::parse("services, METRICS").unwrap();
        assert!(pushes.pushes[Push::Metrics] && pushes.pushes[Push::Services]);
        assert!(!pushes.status && pushes.is_on());
        assert_eq!(pushes.words(), "metrics,services");
        assert_eq!(Reporting::default().words(), "off");
        assert!(!Reporting::parse("status").unwrap().pushes.any());
        let err = Reporting::parse("cpu").unwrap_err();
        for push in Push::ALL {
            assert!(err.contains(push.word()), "{err}");
        }
    }
}
