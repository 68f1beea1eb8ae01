//! What the pushes need from the rest of the configuration, checked
//! together after each setting alone: `report auto` settled against the
//! API and the checks, each push's interval against the beats'.

use std::time::Duration;

use super::api::Api;
use super::keys::Key;
use super::resolve::Settings;
use super::source::{Setting, Source};
use super::{About, ConfigError};
use crate::clock::format_duration;
use crate::discover::containers::Socket;
use crate::push::{Every, PerPush, Push};

/// How often a push goes by `every`.
pub fn every_setting(settings: &Settings, every: Every) -> &Setting<Duration> {
    match every {
        Every::MetricsInterval => &settings.metrics_interval,
        Every::ServicesInterval => &settings.services_interval,
    }
}

/// The intervals some push of `pushes` goes by.
fn used(pushes: PerPush<bool>) -> impl Iterator<Item = (Every, bool)> {
    Every::ALL
        .into_iter()
        .map(move |every| (every, pushes.on().any(|p| p.every() == every)))
}

fn key_of(every: Every) -> Key {
    match every {
        Every::MetricsInterval => Key::MetricsInterval,
        Every::ServicesInterval => Key::ServicesInterval,
    }
}

/// `report auto` becomes the pushes the server's own agent makes: with
/// the agent API, all of them; with the legacy API, none (it has no
/// push). A
/// default interval shorter than the beats' is raised to it: the server
/// agent's 30 s means "every beat" on a box that beats every minute.
pub fn settle(settings: &mut Settings, api: Api) {
    let report = &mut settings.report.value;
    if report.auto {
        let containers = settings.docker_host.value != Socket::Off;
        report.pushes =
            PerPush::from_fn(|push| api == Api::Agent && (push != Push::Containers || containers));
    }
    let interval = settings.interval.value;
    for every in [
        &mut settings.metrics_interval,
        &mut settings.services_interval,
    ] {
        if every.source == Source::Default {
            every.value = every.value.max(interval);
        }
    }
}

/// The errors of a combination that cannot work: pushes without the agent
/// API, pushes more often than beats.
pub fn errors(settings: &Settings, api: Api) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let report = &settings.report;
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
    let interval = &settings.interval;
    for (used, _) in used(wanted.pushes).filter(|(_, used)| *used) {
        let every = every_setting(settings, used);
        if every.value < interval.value {
            out.push(ConfigError {
                about: About::Setting(key_of(used)),
                source: Some(every.source.clone()),
                message: format!(
                    "is {}, shorter than interval ({}); expected at least the interval: pushes \
                     replace beats, so equal means every beat",
                    format_duration(every.value),
                    format_duration(interval.value)
                ),
            });
        }
    }
    out
}

/// A push interval someone set that nothing uses.
pub fn warnings(settings: &Settings) -> Vec<String> {
    used(settings.report.value.pushes)
        .filter(|(_, used)| !used)
        .filter_map(|(every, _)| {
            let setting = every_setting(settings, every);
            (setting.source != Source::Default).then(|| {
                format!(
                    "{} (from {}) is not used: report makes no push that goes by it",
                    key_of(every).name(),
                    setting.source
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigFile, Layer};

    /// The settings from environment variables alone.
    fn settings(vars: &[(Key, &str)]) -> Settings {
        let mut env = Layer::default().with(Key::ApiUrl, "http://m", Source::Env("STACKSENSE_URL"));
        for (key, value) in vars {
            env = env.with(*key, value, Source::Env("STACKSENSE_X"));
        }
        let none = ConfigFile::Missing(Vec::new());
        super::super::resolve::resolve(&Layer::default(), &env, &Layer::default(), &none)
            .unwrap()
            .0
    }

    fn settled(vars: &[(Key, &str)], api: Api) -> Settings {
        let mut s = settings(vars);
        settle(&mut s, api);
        s
    }

    #[test]
    fn auto_is_the_server_agents_pushes_where_they_can_go() {
        let plain = settled(&[], Api::Agent);
        assert!(Push::ALL.iter().all(|p| plain.report.value.pushes[*p]));
        assert_eq!(
            plain.report.value.words(),
            "auto (metrics,services,containers)"
        );
        let no_docker = settled(&[(Key::DockerHost, "off")], Api::Agent);
        assert!(!no_docker.report.value.pushes[Push::Containers]);
        assert!(
            no_docker.report.value.pushes[Push::Services],
            "no check needed"
        );
        let legacy = settled(&[(Key::Health, "memory 1%")], Api::Legacy);
        assert!(!legacy.report.value.pushes.any());
        assert_eq!(errors(&legacy, Api::Legacy), []);
        let off = settled(&[(Key::Report, "off")], Api::Agent);
        assert!(!off.report.value.pushes.any() && !off.report.value.is_on());
    }

    #[test]
    fn default_intervals_follow_slower_beats_and_set_ones_are_held_to_them() {
        let every_minute = settled(&[(Key::Interval, "60")], Api::Agent);
        assert_eq!(every_minute.metrics_interval.value, Duration::from_secs(60));
        assert_eq!(
            every_minute.services_interval.value,
            Duration::from_secs(60)
        );
        assert_eq!(errors(&every_minute, Api::Agent), []);
        let fast = settled(&[(Key::Interval, "10")], Api::Agent);
        assert_eq!(fast.metrics_interval.value, Duration::from_secs(30));
        assert_eq!(fast.services_interval.value, Duration::from_secs(60));
        let short = settled(
            &[(Key::Interval, "60"), (Key::MetricsInterval, "10")],
            Api::Agent,
        );
        let said: Vec<String> = errors(&short, Api::Agent)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].starts_with("metrics_interval (from env STACKSENSE_X): is 10s, shorter"),
            "{said:?}"
        );
    }

    #[test]
    fn pushes_need_the_agent_api_and_not_a_check() {
        let both = settled(&[(Key::Report, "metrics,services")], Api::Legacy);
        let said: Vec<String> = errors(&both, Api::Legacy)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].starts_with("report (from env STACKSENSE_X): is metrics,services")
                && said[0].contains("/api/agent/metrics/ and /api/agent/services/"),
            "{said:?}"
        );
        let services = settled(&[(Key::Report, "services")], Api::Agent);
        assert_eq!(errors(&services, Api::Agent), []);
    }

    #[test]
    fn an_unused_push_interval_is_worth_a_word() {
        let off = settled(
            &[(Key::Report, "off"), (Key::ServicesInterval, "90")],
            Api::Agent,
        );
        let said = warnings(&off);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].starts_with("services_interval (from env STACKSENSE_X) is not used"));
        assert_eq!(warnings(&settled(&[], Api::Agent)), Vec::<String>::new());
    }
}
