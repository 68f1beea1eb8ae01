//! What a setting is called and how it is given: each one's flag,
//! environment variable, file key, default, range and help line, from the
//! table of table.rs. The flag parser, the env and file layers, every error
//! message, `--check` and `--help` take names from here, and a test holds
//! the README's configuration table to it.

use std::time::Duration;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The StackSense server's own agent's cadence (its STACKSENSE_INTERVAL
/// and STACKSENSE_SERVICES_INTERVAL): what the server's anomaly detection,
/// availability and charts count on (docs/design.md, "Metrics and
/// services: how often"). A longer interval raises them to it.
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_SERVICES_INTERVAL: Duration = Duration::from_secs(60);

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

/// [`Key`] and the [`Spec`]s, from the table's first column.
macro_rules! keys_and_specs {
    ($(
        $key:ident { $($spec:tt)* }
        => $(fills $field:ident: $ty:ty = $pick:ident($($arg:expr),*),)? shown $shown:ident;
    )*) => {
        /// A setting, by what it is rather than by a string that could be misspelt.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Key {
            $($key),*
        }

        impl Key {
            /// Every setting, in the table's order.
            pub const ALL: [Key; [$(stringify!($key)),*].len()] = [$(Key::$key),*];
        }

        /// In the order of [`Key`]'s variants: `Key::spec` indexes it.
        const SETTINGS: [Spec; Key::ALL.len()] = [$(Spec { $($spec)* }),*];
    };
}

settings_table!(keys_and_specs);

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
        assert_eq!(
            Key::ServicesInterval.spec().default,
            secs(DEFAULT_SERVICES_INTERVAL)
        );
        for key in [
            Key::Interval,
            Key::Timeout,
            Key::MetricsInterval,
            Key::ServicesInterval,
        ] {
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
