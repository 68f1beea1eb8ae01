//! The `STACKSENSE_*` environment variables, read into a [`Layer`].

use std::ffi::OsString;

use super::keys::{Key, Kind};
use super::source::{Layer, Raw, Source};
use super::{About, ConfigError};

/// `STACKSENSE_*` variables as a layer. An empty variable counts as unset,
/// as in shell `${VAR:-default}`: a template's `STACKSENSE_TOKEN=` line means "none".
pub fn layer(env: &dyn Fn(&str) -> Option<OsString>) -> Result<Layer, Vec<ConfigError>> {
    let mut layer = Layer::default();
    let mut errors = Vec::new();
    for key in Key::ALL {
        for name in key.env_names() {
            let Some(os) = env(name) else { continue };
            let raw = match os.into_string() {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) if key.spec().kind == Kind::List => {
                    Raw::new(split_list(&text), Source::Env(name))
                }
                Ok(text) => Raw::new(text.trim(), Source::Env(name)),
                Err(_) => {
                    errors.push(ConfigError {
                        about: About::Setting(key),
                        source: Some(Source::Env(name)),
                        message: "is not valid UTF-8".into(),
                    });
                    continue;
                }
            };
            match layer.get(key) {
                // The server's agent's name and ours, saying the same: fine.
                Some(first) if first.text == raw.text => {}
                Some(first) => errors.push(ConfigError {
                    about: About::Setting(key),
                    source: None,
                    message: format!(
                        "both {} and {} are set, to different values; set only one",
                        first.source, raw.source
                    ),
                }),
                None => layer.set(key, raw),
            }
        }
    }
    if errors.is_empty() {
        Ok(layer)
    } else {
        Err(errors)
    }
}

/// The StackSense Python agent's variables this agent has no setting for.
const PYTHON_AGENT_ONLY: [&str; 1] = ["STACKSENSE_INSPECT_INTERVAL"];

/// Variables the agent reads that are not settings of the table.
const OTHERS: [&str; 1] = ["STACKSENSE_CONFIG"];

/// A warning for each `STACKSENSE_*` variable in `names` that the agent
/// does not know: a mistyped `STACKSENSE_SERVERID` would otherwise be
/// ignored in silence, while a mistyped file key is pointed out.
pub fn unknown_variables<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let known = |name: &str| {
        OTHERS.contains(&name) || Key::ALL.iter().any(|k| k.env_names().any(|n| n == name))
    };
    let mut warnings = Vec::new();
    for name in names {
        if !name.starts_with("STACKSENSE_") || known(name) {
            continue;
        }
        let shown = crate::text::untrusted_max(name, 60);
        if PYTHON_AGENT_ONLY.contains(&name) {
            warnings.push(format!(
                "env {shown} is the StackSense Python agent's; this agent has no such setting \
                 (ignored)"
            ));
            continue;
        }
        let closest = Key::ALL
            .iter()
            .flat_map(|k| k.env_names())
            .chain(OTHERS)
            .map(|known| (super::file::edit_distance(name, known), known))
            .filter(|(d, _)| *d <= 3)
            .min_by_key(|(d, _)| *d)
            .map(|(_, known)| format!(" (did you mean {known}?)"))
            .unwrap_or_default();
        warnings.push(format!(
            "env {shown} is not a setting of this agent and is ignored{closest}; \
             stacksense-heartbeat --help lists them"
        ));
    }
    warnings
}

/// A list variable's entries, one per line: they are separated by `;` or
/// a newline, except inside quotes (`cmd sh -c 'a; b'` is one entry).
fn split_list(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quote = None;
    for c in text.chars() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            (';' | '\n', None) => {
                out.push('\n');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mistyped_variable_is_pointed_out_like_a_mistyped_key() {
        let names = [
            "STACKSENSE_SERVERID",
            "STACKSENSE_API_URL",
            "STACKSENSE_URL",
            "STACKSENSE_CONFIG",
            "PATH",
            "STACKSENSE_SERVICES_INTERVAL",
            "STACKSENSE_INSPECT_INTERVAL",
            "STACKSENSE_COLOUR",
        ];
        let warnings = unknown_variables(names);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings[0].contains("STACKSENSE_SERVERID")
                && warnings[0].contains("did you mean STACKSENSE_SERVER_ID?")
        );
        assert!(warnings[1].contains("Python agent's"));
        assert!(!warnings[2].contains("did you mean"), "{}", warnings[2]);
    }

    #[test]
    fn list_variables_split_on_semicolons_outside_quotes() {
        assert_eq!(
            split_list(" tcp a:1 ; cmd sh -c 'x; y';;disk / 90%\n"),
            "tcp a:1\ncmd sh -c 'x; y'\ndisk / 90%"
        );
    }

    #[test]
    fn empty_env_vars_count_as_unset_and_values_are_trimmed() {
        let env = |name: &str| match name {
            "STACKSENSE_TOKEN" => Some(OsString::from("")),
            "STACKSENSE_INTERVAL" => Some(OsString::from(" 5 ")),
            _ => None,
        };
        let layer = layer(&env).unwrap();
        assert_eq!(layer.get(Key::Token), None);
        let interval = layer.get(Key::Interval).unwrap();
        assert_eq!(interval.text, "5");
        assert_eq!(interval.source, Source::Env("STACKSENSE_INTERVAL"));
    }

    #[test]
    fn the_servers_own_agents_variable_names_work_too() {
        let env = |name: &str| (name == "STACKSENSE_URL").then(|| OsString::from("https://m"));
        let raw = layer(&env).unwrap().get(Key::ApiUrl).cloned().unwrap();
        assert_eq!(raw.source, Source::Env("STACKSENSE_URL"));
        // Both names, one value: fine; two values: an error naming both.
        let same = |name: &str| name.contains("URL").then(|| OsString::from("https://m"));
        assert!(layer(&same).is_ok());
        let two = |name: &str| match name {
            "STACKSENSE_URL" => Some(OsString::from("https://a")),
            "STACKSENSE_API_URL" => Some(OsString::from("https://b")),
            _ => None,
        };
        let errs = layer(&two).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "api_url: both env STACKSENSE_API_URL and env STACKSENSE_URL are set, to different values; set only one"
        );
    }

    #[test]
    fn every_setting_is_read_from_its_variable() {
        let ours = |name: &str| Key::ALL.iter().any(|k| k.env() == name);
        let env = |name: &str| ours(name).then(|| OsString::from(format!("v-{name}")));
        let layer = layer(&env).unwrap();
        for key in Key::ALL {
            assert_eq!(
                layer.get(key).map(|r| r.text.as_str()),
                Some(format!("v-{}", key.env()).as_str())
            );
        }
    }

    #[test]
    fn a_non_utf8_value_names_its_variable() {
        use std::os::unix::ffi::OsStringExt;
        let env =
            |name: &str| (name == "STACKSENSE_API_URL").then(|| OsString::from_vec(vec![0xff]));
        let errs = layer(&env).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "api_url (from env STACKSENSE_API_URL): is not valid UTF-8"
        );
    }
}
