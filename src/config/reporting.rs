//! The `report` setting: what `--report` adds to a beat's body.

use crate::text;

/// What `--report` adds to the body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reporting {
    /// `status` and `checks` (and `job` for `run`); a failing check then
    /// sends `"status": "fail"` instead of withholding the beat.
    pub status: bool,
    /// `host`: uptime, load, memory, disks, the agent's RSS.
    pub vitals: bool,
}

impl Reporting {
    /// `status`, `vitals`, both comma-separated, or `off`.
    pub fn parse(text: &str) -> Result<Reporting, String> {
        let mut reporting = Reporting::default();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word.to_ascii_lowercase().as_str() {
                "status" => reporting.status = true,
                "vitals" => reporting.vitals = true,
                "off" | "none" => {}
                _ => {
                    return Err(format!(
                        "has \"{}\"; expected status, vitals or both (status,vitals), or off",
                        text::untrusted_max(word, 40)
                    ));
                }
            }
        }
        Ok(reporting)
    }

    pub fn is_on(self) -> bool {
        self.status || self.vitals
    }

    /// As `--check` and the start-up line show it.
    pub fn words(self) -> &'static str {
        match (self.status, self.vitals) {
            (false, false) => "off",
            (true, false) => "status",
            (false, true) => "vitals",
            (true, true) => "status,vitals",
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
        };
        assert_eq!(Reporting::parse("status,vitals"), Ok(both));
        assert_eq!(Reporting::parse(" Vitals , status "), Ok(both));
        assert_eq!(Reporting::parse("off"), Ok(Reporting::default()));
        let err = Reporting::parse("status,cpu").unwrap_err();
        assert!(err.contains("\"cpu\"") && err.contains("expected"), "{err}");
    }
}
