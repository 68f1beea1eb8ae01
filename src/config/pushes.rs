//! What `report metrics`/`services` and `metrics_interval` need from the
//! rest of the configuration: checked together, after each one alone.

use std::time::Duration;

use super::api::Api;
use super::keys::Key;
use super::source::{Setting, Source};
use super::{About, ConfigError, Reporting};
use crate::clock::format_duration;
use crate::push::Push;

/// The errors of a combination that cannot work: pushes without the agent
/// API, services without a check, pushes more often than beats.
pub fn errors(
    report: &Setting<Reporting>,
    api: Api,
    checks: usize,
    interval: &Setting<Duration>,
    metrics_interval: &Setting<Duration>,
) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let about_report = |message: String| ConfigError {
        about: About::Setting(Key::Report),
        source: Some(report.source.clone()),
        message,
    };
    let wanted = report.value;
    if wanted.pushes.any() && api == Api::Legacy {
        let paths: Vec<String> = wanted
            .pushes
            .on()
            .map(|p| format!("/api/agent/{}/", p.word()))
            .collect();
        out.push(about_report(format!(
            "is {}, which the legacy API has no endpoint for; pushes go to {} with a token \
             (api agent)",
            wanted.words(),
            paths.join(" and ")
        )));
    }
    if wanted.pushes[Push::Services] && checks == 0 {
        out.push(about_report(
            "has services, which sends each health check as a service, but no check is \
             configured; add one (--health, STACKSENSE_HEALTH or \"health\"), or drop services"
                .into(),
        ));
    }
    if wanted.pushes.any() && metrics_interval.value < interval.value {
        out.push(ConfigError {
            about: About::Setting(Key::MetricsInterval),
            source: Some(metrics_interval.source.clone()),
            message: format!(
                "is {}, shorter than interval ({}); expected at least the interval: pushes \
                 replace beats, so equal means every beat",
                format_duration(metrics_interval.value),
                format_duration(interval.value)
            ),
        });
    }
    out
}

/// `--once` and `run` send one beat from a fresh process: a sampled push
/// (metrics) would have no previous sample to measure the CPU share and
/// the rates over (psutil's first `cpu_percent` is a meaningless 0.0;
/// ours would be a few milliseconds' worth). Refused rather than sent wrong.
pub fn one_beat_error(report: &Setting<Reporting>, mode: &str) -> Option<ConfigError> {
    let push = report.value.pushes.on().find(|p| p.sampled())?;
    let word = push.word();
    Some(ConfigError {
        about: About::Setting(Key::Report),
        source: Some(report.source.clone()),
        message: format!(
            "has {word}, which {mode} cannot send: cpu_percent and the rates are measured \
             from one push to the next, and {mode} sends one beat; run the service for \
             {word} (services alone work with {mode})"
        ),
    })
}

/// A metrics_interval someone set that nothing uses.
pub fn warning(report: Reporting, metrics_interval: &Setting<Duration>) -> Option<String> {
    (!report.pushes.any() && metrics_interval.source != Source::Default).then(|| {
        format!(
            "metrics_interval (from {}) is not used: report has neither metrics nor services",
            metrics_interval.source
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set<T>(value: T) -> Setting<T> {
        Setting {
            value,
            source: Source::Env("STACKSENSE_X"),
        }
    }

    fn secs(n: u64) -> Setting<Duration> {
        set(Duration::from_secs(n))
    }

    #[test]
    fn pushes_need_the_agent_api_a_check_and_no_more_than_the_beats() {
        let both = set(Reporting::parse("metrics,services").unwrap());
        let ok = errors(&both, Api::Agent, 1, &secs(30), &secs(30));
        assert_eq!(ok, Vec::new());
        let legacy = errors(&both, Api::Legacy, 1, &secs(30), &secs(300));
        assert_eq!(legacy.len(), 1);
        let said = legacy[0].to_string();
        assert!(
            said.starts_with("report (from env STACKSENSE_X): is metrics,services")
                && said.contains("/api/agent/metrics/"),
            "{said}"
        );
        let no_checks = errors(&both, Api::Agent, 0, &secs(30), &secs(300));
        assert!(
            no_checks[0].to_string().contains("no check"),
            "{no_checks:?}"
        );
        let faster = errors(&both, Api::Agent, 1, &secs(30), &secs(10));
        let said = faster[0].to_string();
        assert!(
            said.starts_with("metrics_interval (from env STACKSENSE_X): is 10s, shorter"),
            "{said}"
        );
        let metrics = set(Reporting::parse("metrics").unwrap());
        assert_eq!(errors(&metrics, Api::Agent, 0, &secs(30), &secs(60)), []);
    }

    #[test]
    fn one_beat_cannot_carry_metrics() {
        let metrics = set(Reporting::parse("metrics,services").unwrap());
        let said = one_beat_error(&metrics, "--once").unwrap().to_string();
        assert!(
            said.starts_with("report (from env STACKSENSE_X): has metrics, which --once cannot"),
            "{said}"
        );
        let services = set(Reporting::parse("services").unwrap());
        assert_eq!(one_beat_error(&services, "run"), None);
    }

    #[test]
    fn an_unused_metrics_interval_is_worth_a_word() {
        let off = Reporting::default();
        assert!(warning(off, &secs(60)).is_some());
        let default = Setting {
            value: Duration::from_secs(300),
            source: Source::Default,
        };
        assert_eq!(warning(off, &default), None);
        let on = Reporting::parse("metrics").unwrap();
        assert_eq!(warning(on, &secs(60)), None);
    }
}
