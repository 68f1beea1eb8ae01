//! Which of the server's endpoints beats go to: the agent API (a token,
//! what StackSense accepts) or the legacy route seed 004 named. A pure
//! decision from what is configured.

use super::keys::Key;
use super::source::Setting;
use super::{About, ConfigError};
use crate::push::Push;

/// The endpoint family beats use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST {api_url}/api/agent/heartbeat/` with `Authorization: Bearer`;
    /// the token says which box it is. `GET /api/agent/ping/` checks it.
    Agent,
    /// `POST {api_url}/api/heartbeat/{server_id}/`. StackSense itself
    /// refuses anonymous POSTs there (Django's CSRF check), but other
    /// servers built to seed 004's card serve it.
    Legacy,
}

impl Api {
    pub fn word(self) -> &'static str {
        match self {
            Api::Agent => "agent",
            Api::Legacy => "legacy",
        }
    }
}

/// The `api` setting as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Legacy when a server_id is set, else agent.
    Auto,
    Fixed(Api),
}

pub fn parse(text: &str) -> Result<Choice, String> {
    match text.to_ascii_lowercase().as_str() {
        "auto" => Ok(Choice::Auto),
        "agent" => Ok(Choice::Fixed(Api::Agent)),
        "legacy" => Ok(Choice::Fixed(Api::Legacy)),
        _ => Err("expected agent, legacy or auto".into()),
    }
}

/// What `--check` and the start-up line say about a choice auto made.
pub const AUTO_AGENT: &str = "auto: a token and no server_id";
pub const AUTO_LEGACY: &str = "auto: server_id is set";

/// Where to make a token, for every message that asks for one.
pub const MAKE_A_TOKEN: &str =
    "make a token on the server with `python manage.py create_agent_token <server id or name>`";

/// The API beats use, and why when auto chose it. `server_id` and
/// `has_token` say what the other settings give.
pub fn choose(
    choice: &Setting<Choice>,
    server_id: Option<&Setting<String>>,
    has_token: bool,
) -> Result<(Setting<Api>, Option<&'static str>), ConfigError> {
    let error = |message: String| ConfigError {
        about: About::Setting(Key::Api),
        source: Some(choice.source.clone()),
        message,
    };
    let (api, why) = match choice.value {
        Choice::Fixed(api) => (api, None),
        Choice::Auto if server_id.is_some() => (Api::Legacy, Some(AUTO_LEGACY)),
        Choice::Auto if has_token => (Api::Agent, Some(AUTO_AGENT)),
        Choice::Auto => {
            return Err(ConfigError {
                source: None,
                ..error(format!(
                    "no token and no server_id; the StackSense agent API needs a token \
                     (env STACKSENSE_TOKEN, token_file or a systemd credential): {MAKE_A_TOKEN}"
                ))
            });
        }
    };
    match api {
        Api::Agent if !has_token => Err(error(format!(
            "is agent, which needs a token (env STACKSENSE_TOKEN, token_file or a systemd \
             credential); none is set: {MAKE_A_TOKEN}"
        ))),
        Api::Legacy if server_id.is_none() => Err(error(
            "is legacy, which needs server_id (POST /api/heartbeat/<server_id>/); set it, \
             or use the agent API with a token"
                .into(),
        )),
        _ => Ok((
            Setting {
                value: api,
                source: choice.source.clone(),
            },
            why,
        )),
    }
}

/// Settings that are valid but do not do what their author may think with
/// this API: said once at start.
pub fn warnings(api: Api, server_id: Option<&Setting<String>>) -> Option<String> {
    let id = server_id?;
    match api {
        Api::Agent => Some(format!(
            "server_id (from {}) is not used by the agent API: the token says which box this is",
            id.source
        )),
        Api::Legacy if !id.value.bytes().all(|b| b.is_ascii_digit()) => Some(format!(
            "server_id (from {}) is not a number: StackSense routes only numeric ids \
             (/api/heartbeat/<int>/), so a name gets 404 there",
            id.source
        )),
        Api::Legacy => None,
    }
}

/// The beat's URL for `api`.
pub fn beat_url(api: Api, api_url: &str, server_id: Option<&str>) -> String {
    let base = api_url.trim_end_matches('/');
    match (api, server_id) {
        (Api::Legacy, Some(id)) => format!("{base}/api/heartbeat/{id}/"),
        _ => format!("{base}/api/agent/heartbeat/"),
    }
}

/// Where the agent API takes a push: `metrics` or `services`.
pub fn push_url(api_url: &str, push: Push) -> String {
    format!(
        "{}/api/agent/{}/",
        api_url.trim_end_matches('/'),
        push.word()
    )
}

/// The agent API's side-effect-free authenticated request.
pub fn ping_url(api_url: &str) -> String {
    format!("{}/api/agent/ping/", api_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beat_urls_never_double_the_slash() {
        let legacy = beat_url(Api::Legacy, "http://h/mon/", Some("web-1"));
        assert_eq!(legacy, "http://h/mon/api/heartbeat/web-1/");
        assert_eq!(
            beat_url(Api::Agent, "http://h/", None),
            "http://h/api/agent/heartbeat/"
        );
        assert_eq!(ping_url("https://h/x/"), "https://h/x/api/agent/ping/");
        assert_eq!(
            push_url("https://h/x/", Push::Metrics),
            "https://h/x/api/agent/metrics/"
        );
    }
    use crate::config::Source;

    fn set<T>(value: T) -> Setting<T> {
        Setting {
            value,
            source: Source::Env("STACKSENSE_X"),
        }
    }

    fn auto() -> Setting<Choice> {
        Setting {
            value: Choice::Auto,
            source: Source::Default,
        }
    }

    #[test]
    fn auto_takes_the_agent_api_for_a_token_and_legacy_for_a_server_id() {
        let id = set("3".to_string());
        let (api, why) = choose(&auto(), None, true).unwrap();
        assert_eq!((api.value, why), (Api::Agent, Some(AUTO_AGENT)));
        let (api, why) = choose(&auto(), Some(&id), true).unwrap();
        assert_eq!((api.value, why), (Api::Legacy, Some(AUTO_LEGACY)));
        let (api, _) = choose(&auto(), Some(&id), false).unwrap();
        assert_eq!(api.value, Api::Legacy);
        let e = choose(&auto(), None, false).unwrap_err().to_string();
        assert!(e.starts_with("api: no token and no server_id"), "{e}");
        assert!(e.contains("create_agent_token"), "{e}");
    }

    #[test]
    fn a_fixed_api_needs_what_it_sends() {
        let id = set("3".to_string());
        let agent = set(Choice::Fixed(Api::Agent));
        let (api, why) = choose(&agent, Some(&id), true).unwrap();
        assert_eq!((api.value, why), (Api::Agent, None));
        let e = choose(&agent, None, false).unwrap_err().to_string();
        assert!(
            e.starts_with("api (from env STACKSENSE_X): is agent, which needs a token"),
            "{e}"
        );
        let legacy = set(Choice::Fixed(Api::Legacy));
        let e = choose(&legacy, None, true).unwrap_err().to_string();
        assert!(e.contains("needs server_id"), "{e}");
    }

    #[test]
    fn surprising_combinations_are_said() {
        let name = set("web-1".to_string());
        assert!(
            warnings(Api::Legacy, Some(&name))
                .unwrap()
                .contains("only numeric ids")
        );
        assert_eq!(warnings(Api::Legacy, Some(&set("3".into()))), None);
        assert!(
            warnings(Api::Agent, Some(&name))
                .unwrap()
                .contains("not used by the agent API")
        );
        assert_eq!(warnings(Api::Agent, None), None);
    }

    #[test]
    fn urls_of_each_api() {
        assert_eq!(
            beat_url(Api::Agent, "https://m/", Some("3")),
            "https://m/api/agent/heartbeat/"
        );
        assert_eq!(
            beat_url(Api::Legacy, "https://m/x", Some("3")),
            "https://m/x/api/heartbeat/3/"
        );
        assert_eq!(ping_url("https://m"), "https://m/api/agent/ping/");
        assert_eq!(parse("Agent"), Ok(Choice::Fixed(Api::Agent)));
        assert!(parse("token").is_err());
    }
}
