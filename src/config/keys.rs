//! The one table of settings: each one's flag, environment variable, file
//! key, default, range and help line. The flag parser, the env and file
//! layers, every error message, `--check` and `--help` take names from here,
//! and a test holds the README's configuration table to it.

use std::time::Duration;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Every tenth beat at the default interval: 15 MB a month of pushes
/// instead of 150 at every beat (docs/design.md, "Metrics: how often").
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(300);

/// A setting, by what it is rather than by a string that could be misspelt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    ApiUrl,
    Token,
    TokenFile,
    Api,
    ServerId,
    Interval,
    Timeout,
    CaFile,
    PinnedPubkey,
    VerifyTls,
    Splay,
    Keepalive,
    Health,
    Report,
    MetricsInterval,
}

/// How a setting is given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// No flag at all (the token: a flag would show in `ps`).
    None,
    /// `--name VALUE`; the second field names the value in `--help`.
    Value(&'static str, &'static str),
    /// `--name` alone sets this value (`--no-splay` sets splay to false).
    Sets(&'static str, &'static str),
}

/// The kind of value, which says how a JSON value in the file reads as text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// A whole number or a string.
    Id,
    Text,
    Seconds {
        min: f64,
        max: f64,
    },
    Bool,
    /// Any number of entries: a repeated flag, `;`-separated in the
    /// environment, an array in the file. Held as one text, one entry per line.
    List,
}

pub struct Spec {
    pub key: Key,
    /// The config file's key, and the setting's name in every message.
    pub name: &'static str,
    pub env: &'static str,
    /// Other names the setting answers to, in the environment and the file:
    /// the StackSense server's own agent's (`STACKSENSE_URL`, `"url"`), so a
    /// box switches by replacing the binary.
    pub aliases: &'static [&'static str],
    pub flag: Flag,
    pub kind: Kind,
    /// The default as `--help` and the README show it.
    pub default: &'static str,
    pub help: &'static str,
}

impl Key {
    pub const ALL: [Key; 15] = [
        Key::ApiUrl,
        Key::Token,
        Key::TokenFile,
        Key::Api,
        Key::ServerId,
        Key::Interval,
        Key::Timeout,
        Key::CaFile,
        Key::PinnedPubkey,
        Key::VerifyTls,
        Key::Splay,
        Key::Keepalive,
        Key::Health,
        Key::Report,
        Key::MetricsInterval,
    ];

    pub fn spec(self) -> &'static Spec {
        &SETTINGS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn env(self) -> &'static str {
        self.spec().env
    }

    /// The setting a config file key names (or one of its aliases).
    pub fn from_name(name: &str) -> Option<Key> {
        Key::ALL
            .into_iter()
            .find(|k| k.name() == name || k.spec().aliases.contains(&name))
    }

    /// The environment variables that give this setting, its own first.
    pub fn env_names(self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.env()).chain(
            self.spec()
                .aliases
                .iter()
                .copied()
                .filter(|a| a.starts_with("STACKSENSE_")),
        )
    }

    /// The setting a long flag (`--interval`) gives.
    pub fn from_flag(flag: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| match k.spec().flag {
            Flag::Value(f, _) | Flag::Sets(f, _) => f == flag,
            Flag::None => false,
        })
    }

    /// A setting whose value is never echoed: the token, and the token
    /// file's path (a token pasted there by mistake must not be printed).
    pub fn is_secret(self) -> bool {
        matches!(self, Key::Token | Key::TokenFile)
    }

    /// The range of a setting in seconds.
    pub fn seconds_range(self) -> Option<(f64, f64)> {
        match self.spec().kind {
            Kind::Seconds { min, max } => Some((min, max)),
            _ => None,
        }
    }
}

/// In the order of [`Key`]'s variants, which the build checks.
const SETTINGS: [Spec; 15] = [
    Spec {
        key: Key::ApiUrl,
        name: "api_url",
        env: "STACKSENSE_API_URL",
        aliases: &["STACKSENSE_URL", "url"],
        flag: Flag::Value("--api-url", "URL"),
        kind: Kind::Text,
        default: "(required)",
        help: "The StackSense server's base URL, http:// or https://, may carry a\n\
               path prefix. Also read from STACKSENSE_URL (the server's own agent's).",
    },
    Spec {
        key: Key::Token,
        name: "token",
        env: "STACKSENSE_TOKEN",
        aliases: &[],
        flag: Flag::None,
        kind: Kind::Text,
        default: "(none)",
        help: "The agent token from `python manage.py create_agent_token <server>`,\n\
               sent as \"Authorization: Bearer ...\"; never logged, never passed\n\
               to checks or jobs. No --token flag: a flag would show in `ps`.",
    },
    Spec {
        key: Key::TokenFile,
        name: "token_file",
        env: "STACKSENSE_TOKEN_FILE",
        aliases: &[],
        flag: Flag::Value("--token-file", "PATH"),
        kind: Kind::Text,
        default: "(none)",
        help: "A file holding the token. Under systemd a credential named\n\
               \"token\" (LoadCredential=token:PATH) is used unless a flag or\n\
               an environment variable sets one (it wins over the config file).",
    },
    Spec {
        key: Key::Api,
        name: "api",
        env: "STACKSENSE_API",
        aliases: &[],
        flag: Flag::Value("--api", "API"),
        kind: Kind::Text,
        default: "auto",
        help: "agent: POST /api/agent/heartbeat/ with the token (what StackSense\n\
               accepts); legacy: POST /api/heartbeat/<server_id>/. auto: legacy\n\
               when server_id is set, else agent.",
    },
    Spec {
        key: Key::ServerId,
        name: "server_id",
        env: "STACKSENSE_SERVER_ID",
        aliases: &[],
        flag: Flag::Value("--server-id", "ID"),
        kind: Kind::Id,
        default: "(none)",
        help: "Legacy API only: the server's id, 1-64 characters of A-Z a-z 0-9 . _ -\n\
               (StackSense routes only numbers); a number in the file is fine.",
    },
    Spec {
        key: Key::Interval,
        name: "interval",
        env: "STACKSENSE_INTERVAL",
        aliases: &[],
        flag: Flag::Value("--interval", "SECS"),
        kind: Kind::Seconds {
            min: 0.1,
            max: 86_400.0,
        },
        default: "30",
        help: "Seconds between beats, 0.1 to 86400.",
    },
    Spec {
        key: Key::Timeout,
        name: "timeout",
        env: "STACKSENSE_TIMEOUT",
        aliases: &[],
        flag: Flag::Value("--timeout", "SECS"),
        kind: Kind::Seconds {
            min: 0.1,
            max: 3_600.0,
        },
        default: "10",
        help: "Limit for one attempt: DNS + connect + TLS + response, 0.1 to 3600.",
    },
    Spec {
        key: Key::CaFile,
        name: "ca_file",
        env: "STACKSENSE_CA_FILE",
        aliases: &[],
        flag: Flag::Value("--ca-file", "PATH"),
        kind: Kind::Text,
        default: "bundled roots",
        help: "PEM CA certificates to trust instead of the bundled Mozilla roots.",
    },
    Spec {
        key: Key::PinnedPubkey,
        name: "pinned_pubkey",
        env: "STACKSENSE_PINNED_PUBKEY",
        aliases: &[],
        flag: Flag::Value("--pinned-pubkey", "PIN"),
        kind: Kind::Text,
        default: "(none)",
        help: "sha256//BASE64 (curl's --pinnedpubkey form; several with \";\"):\n\
               trust exactly the server key with this hash, also in a self-signed\n\
               certificate; --check prints the pin of the key a server shows.",
    },
    Spec {
        key: Key::VerifyTls,
        name: "verify_tls",
        env: "STACKSENSE_VERIFY_TLS",
        aliases: &[],
        flag: Flag::None,
        kind: Kind::Bool,
        default: "true",
        help: "The server's own agent's setting, read so that it is not silently\n\
               ignored: false is refused with a warning (verification stays on;\n\
               pin a self-signed server's key with pinned_pubkey instead).",
    },
    Spec {
        key: Key::Splay,
        name: "splay",
        env: "STACKSENSE_SPLAY",
        aliases: &[],
        flag: Flag::Sets("--no-splay", "false"),
        kind: Kind::Bool,
        default: "true",
        help: "--no-splay puts beats on exact multiples of the interval from\n\
               start instead of a random phase (splay keeps a fleet from\n\
               beating in lockstep).",
    },
    Spec {
        key: Key::Keepalive,
        name: "keepalive",
        env: "STACKSENSE_KEEPALIVE",
        aliases: &[],
        flag: Flag::Sets("--no-keepalive", "false"),
        kind: Kind::Bool,
        default: "true",
        help: "Reuse the connection while the server keeps it open (a dead one is\n\
               replaced within the same beat). --no-keepalive: a new connection\n\
               per beat (TLS sessions are still resumed).",
    },
    Spec {
        key: Key::Health,
        name: "health",
        env: "STACKSENSE_HEALTH",
        aliases: &[],
        flag: Flag::Value("--health", "CHECK"),
        kind: Kind::List,
        default: "(none)",
        help: "A check that must pass before each beat; repeat the flag for more\n\
               (\";\" between checks in the variable, an array in the file):\n\
               tcp HOST:PORT | http URL | cmd PROGRAM ARGS... | disk PATH MAX% |\n\
               memory MIN%|MIN{K,M,G} | load MAX (1-minute load per CPU).\n\
               \"timeout=SECS\" after the kind: its limit (default 5, cut to the\n\
               time left before the next beat). A failing check withholds the beat.",
    },
    Spec {
        key: Key::Report,
        name: "report",
        env: "STACKSENSE_REPORT",
        aliases: &[],
        flag: Flag::Value("--report", "LIST"),
        kind: Kind::Text,
        default: "(off)",
        help: "status, vitals, metrics, services, comma-separated. status: every\n\
               beat carries \"status\" and the checks' results (a failing check no\n\
               longer withholds it); vitals: and \"host\" figures. With the agent\n\
               API, metrics and services push the box's CPU, memory, disks and\n\
               network, and each check as a service, in place of a beat every\n\
               metrics_interval. Off: the body is {\"agent_version\": ...}.",
    },
    Spec {
        key: Key::MetricsInterval,
        name: "metrics_interval",
        env: "STACKSENSE_METRICS_INTERVAL",
        aliases: &[],
        flag: Flag::Value("--metrics-interval", "SECS"),
        kind: Kind::Seconds {
            min: 0.1,
            max: 86_400.0,
        },
        default: "300",
        help: "Seconds between metrics and services pushes, 0.1 to 86400, at least\n\
               the interval (equal: every beat); the beats between stay plain.\n\
               A check that changes its verdict is pushed at the next beat.",
    },
];

const _: () = {
    let mut i = 0;
    while i < SETTINGS.len() {
        assert!(
            SETTINGS[i].key as usize == i,
            "SETTINGS is out of Key order"
        );
        i += 1;
    }
};

/// The OPTIONS rows of `--help` for every setting, in table order.
pub fn help_rows() -> String {
    let mut out = String::new();
    for key in Key::ALL {
        let spec = key.spec();
        let flag = match spec.flag {
            Flag::None => String::new(),
            Flag::Value(flag, value) => format!("{flag} {value}"),
            Flag::Sets(flag, _) => flag.to_string(),
        };
        out.push_str(&format!(
            "    {flag:<26} {:<24} {:<12} {}\n",
            spec.env, spec.name, spec.default
        ));
        for line in spec.help.lines() {
            out.push_str(&format!("        {}\n", line.trim_start()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_one_name_and_its_variable() {
        for (i, key) in Key::ALL.into_iter().enumerate() {
            assert_eq!(key as usize, i);
            assert_eq!(Key::from_name(key.name()), Some(key));
            assert!(key.env().starts_with("STACKSENSE_"), "{}", key.env());
            assert_eq!(
                key.env(),
                format!("STACKSENSE_{}", key.name().to_ascii_uppercase())
            );
        }
    }

    #[test]
    fn flags_find_their_setting() {
        assert_eq!(Key::from_flag("--interval"), Some(Key::Interval));
        assert_eq!(Key::from_flag("--no-splay"), Some(Key::Splay));
        assert_eq!(Key::from_flag("--token"), None);
    }

    #[test]
    fn documented_defaults_are_the_defaults_used() {
        let secs = |d: Duration| format!("{}", d.as_secs_f64());
        assert_eq!(Key::Interval.spec().default, secs(DEFAULT_INTERVAL));
        assert_eq!(Key::Timeout.spec().default, secs(DEFAULT_TIMEOUT));
        assert_eq!(
            Key::MetricsInterval.spec().default,
            secs(DEFAULT_METRICS_INTERVAL)
        );
        for key in [Key::Interval, Key::Timeout, Key::MetricsInterval] {
            let (min, max) = key.seconds_range().unwrap();
            assert!(
                key.spec().help.contains(&format!("{min} to {max}")),
                "{key:?}'s help does not give its range"
            );
        }
    }

    /// The README's configuration table names every setting with the same
    /// flag, variable, file key and default as this table.
    #[test]
    fn the_readme_configuration_table_agrees() {
        let readme = include_str!("../../README.md");
        let rows: Vec<&str> = readme
            .lines()
            .skip_while(|l| !l.starts_with("## Configuration"))
            .skip(1)
            .take_while(|l| !l.starts_with("## "))
            .filter(|l| l.starts_with("| "))
            .collect();
        assert!(!rows.is_empty(), "no configuration table in README.md");
        for key in Key::ALL {
            let spec = key.spec();
            let env = format!("`{}`", spec.env);
            let row = rows
                .iter()
                .find(|r| r.contains(&env))
                .unwrap_or_else(|| panic!("README's table has no row with {env}"));
            assert!(
                row.contains(&format!("`{}`", spec.name)),
                "{row} lacks file key {}",
                spec.name
            );
            if let Flag::Value(flag, _) | Flag::Sets(flag, _) = spec.flag {
                assert!(row.contains(&format!("`{flag}`")), "{row} lacks {flag}");
            }
            let default = match spec.default {
                "(required)" => "required",
                "(none)" => "none",
                "auto" => "auto",
                "bundled roots" => "bundled",
                "true" => "on",
                "(off)" => "off",
                secs => secs,
            };
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let last = cells[cells.len() - 2];
            assert!(
                last.starts_with(default),
                "{row}: default should read {default:?}"
            );
        }
    }
}
