//! The `report` setting: what `--report` adds to a beat's body, and which
//! of the agent API's pushes replace a beat.

use crate::text;

/// What `--report` turns on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reporting {
    /// `status` and `checks` (and `job` for `run`); a failing check then
    /// sends `"status": "fail"` instead of withholding the beat.
    pub status: bool,
    /// `host`: uptime, load, memory, disks, the agent's RSS.
    pub vitals: bool,
    /// `POST /api/agent/metrics/` every `metrics_interval`: the server's
    /// CPU, memory, disk and network graphs.
    pub metrics: bool,
    /// `POST /api/agent/services/`: each health check as a service.
    pub services: bool,
}

/// The words `report` takes, in the order `words` gives them.
const WORDS: [&str; 4] = ["status", "vitals", "metrics", "services"];

impl Reporting {
    /// Any of `status`, `vitals`, `metrics`, `services`, comma-separated, or `off`.
    pub fn parse(text: &str) -> Result<Reporting, String> {
        let mut reporting = Reporting::default();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word.to_ascii_lowercase().as_str() {
                "status" => reporting.status = true,
                "vitals" => reporting.vitals = true,
                "metrics" => reporting.metrics = true,
                "services" => reporting.services = true,
                "off" | "none" => {}
                _ => {
                    return Err(format!(
                        "has \"{}\"; expected status, vitals, metrics or services \
                         (comma-separated, e.g. metrics,services), or off",
                        text::untrusted_max(word, 40)
                    ));
                }
            }
        }
        Ok(reporting)
    }

    /// Something to do before a beat: a body to compose or a push to make.
    pub fn is_on(self) -> bool {
        self.status || self.vitals || self.pushes()
    }

    /// A push to the agent API's metrics or services endpoint.
    pub fn pushes(self) -> bool {
        self.metrics || self.services
    }

    /// The pushes on, for the start-up line.
    pub fn push_words(self) -> &'static str {
        match (self.metrics, self.services) {
            (true, true) => "metrics and services",
            (true, false) => "metrics",
            (false, true) => "services",
            (false, false) => "nothing",
        }
    }

    /// As `--check` and the start-up line show it.
    pub fn words(self) -> String {
        let on = [self.status, self.vitals, self.metrics, self.services];
        let words: Vec<&str> = WORDS
            .iter()
            .zip(on)
            .filter_map(|(w, on)| on.then_some(*w))
            .collect();
        if words.is_empty() {
            "off".into()
        } else {
            words.join(",")
        }
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
        let err = Reporting::parse("status,cpu").unwrap_err();
        assert!(err.contains("\"cpu\"") && err.contains("expected"), "{err}");
    }

    #[test]
    fn pushes_are_words_of_their_own() {
        let pushes = Reporting::parse("services, METRICS").unwrap();
        assert!(pushes.metrics && pushes.services && !pushes.status);
        assert!(pushes.pushes() && pushes.is_on());
        assert_eq!(pushes.words(), "metrics,services");
        assert_eq!(Reporting::default().words(), "off");
        assert!(!Reporting::parse("status").unwrap().pushes());
    }
}
