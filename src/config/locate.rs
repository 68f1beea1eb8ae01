//! Which config file is read, and whether it is safe to: `--config`, else
//! `STACKSENSE_CONFIG`, else `~/.stacksense_heartbeat.conf` if it exists,
//! else `/etc/stacksense/heartbeat.conf` (what the packages and install.sh
//! write) if it exists. A file named outright must be readable; a default
//! one that is absent or unreadable is skipped with a word.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::error::{About, ConfigError};
use super::file;
use super::keys::Key;
use super::source::{Layer, Source};
use super::{Inputs, shown};
use crate::files::read_small_file;
use crate::text::describe_io;

pub const DEFAULT_FILE_NAME: &str = ".stacksense_heartbeat.conf";
/// Where the packages, install.sh and the image put the config.
pub const SYSTEM_FILE: &str = "/etc/stacksense/heartbeat.conf";
/// The StackSense server's own Python agent's file (keys url, token,
/// interval, verify_tls): not read unless named, see [`read`].
const SERVER_AGENT_FILE_NAME: &str = ".stacksense_agent.conf";

/// Which config file was looked at, for `--check`.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigFile {
    /// None of the default files exists; these were looked for.
    Missing(Vec<PathBuf>),
    /// A default file we may not read (a warning, not an error).
    Unreadable(PathBuf),
    Loaded(PathBuf),
}

/// The file's layer, which file it was, and warnings (unknown keys, loose
/// permissions, a file left by the server's own agent).
pub fn read(inputs: &Inputs) -> Result<(Layer, ConfigFile, Vec<String>), Vec<ConfigError>> {
    let from_env = (inputs.env)("STACKSENSE_CONFIG")
        .and_then(|p| p.into_string().ok())
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty());
    let mut warnings = Vec::new();
    let (path, explicit) = match (&inputs.config_flag, from_env) {
        (Some(path), _) => (path.clone(), Some(Source::Flag("--config"))),
        (None, Some(path)) => (PathBuf::from(path), Some(Source::Env("STACKSENSE_CONFIG"))),
        (None, None) => {
            let user = inputs.home.as_ref().map(|h| h.join(DEFAULT_FILE_NAME));
            let candidates: Vec<PathBuf> = user
                .into_iter()
                .chain([inputs.system_file.clone()])
                .collect();
            // A file we may not even look at counts as there: reading it
            // then says why it is skipped.
            let present = |p: &&PathBuf| match fs::metadata(p) {
                Ok(_) => true,
                Err(e) => e.kind() == io::ErrorKind::PermissionDenied,
            };
            match candidates.iter().find(present) {
                Some(found) => (found.clone(), None),
                None => {
                    if let Some(home) = &inputs.home {
                        let theirs = home.join(SERVER_AGENT_FILE_NAME);
                        if theirs.exists() {
                            warnings.push(format!(
                                "{} (the StackSense Python agent's file) is not read unless \
                                 named: pass --config {} (its keys url, token, interval and \
                                 verify_tls are understood), or move its settings to {}",
                                shown(&theirs),
                                shown(&theirs),
                                shown(&inputs.system_file)
                            ));
                        }
                    }
                    let layer = Layer::default();
                    return Ok((layer, ConfigFile::Missing(candidates), warnings));
                }
            }
        }
    };
    let text = match read_small_file(&path) {
        Ok(text) => text,
        // Gone between the look and the read: as if it never was.
        Err(e) if e.kind() == io::ErrorKind::NotFound && explicit.is_none() => {
            return Ok((Layer::default(), ConfigFile::Missing(vec![path]), warnings));
        }
        // A default file is optional: a service user who may not read it
        // still runs on flags and environment.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && explicit.is_none() => {
            warnings.push(format!(
                "cannot read the default config file {}: {}; going on without it \
                 (name a file with --config to make this an error)",
                shown(&path),
                describe_io(&e)
            ));
            return Ok((Layer::default(), ConfigFile::Unreadable(path), warnings));
        }
        Err(e) => {
            return Err(vec![ConfigError {
                about: About::ConfigFile,
                source: explicit,
                message: format!("cannot read {}: {}", shown(&path), describe_io(&e)),
            }]);
        }
    };
    let (layer, unknown_keys) = file::parse(&text, &path)?;
    warnings.extend(unknown_keys);
    warnings.extend(writable_by_others(&path));
    if layer.get(Key::Token).is_some() {
        warnings.extend(world_readable(&path, "config file with a token"));
    }
    Ok((layer, ConfigFile::Loaded(path), warnings))
}

pub fn world_readable(path: &Path, what: &str) -> Option<String> {
    let mode = fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o004 != 0).then(|| {
        format!(
            "{what} {} is readable by every user (mode {:04o}); chmod 600 it",
            shown(path),
            mode & 0o7777
        )
    })
}

/// Whoever can write the config file can point `api_url` and `token_file`
/// anywhere.
fn writable_by_others(path: &Path) -> Option<String> {
    let mode = fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o022 != 0).then(|| {
        format!(
            "config file {} is writable by {} (mode {:04o}): whoever can write it can send \
             the token anywhere; chmod go-w it",
            shown(path),
            if mode & 0o002 != 0 {
                "every user"
            } else {
                "its group"
            },
            mode & 0o7777
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let path = std::env::temp_dir().join(format!("locate-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn inputs<'a>(
        home: &Path,
        system: &Path,
        env: &'a dyn Fn(&str) -> Option<OsString>,
    ) -> Inputs<'a> {
        Inputs {
            flags: Layer::default(),
            config_flag: None,
            env,
            env_names: Vec::new(),
            home: Some(home.to_path_buf()),
            system_file: system.to_path_buf(),
        }
    }

    #[test]
    fn the_per_user_file_wins_then_the_system_file_then_none() {
        let dir = Dir::new("order");
        let home = dir.0.join("home");
        fs::create_dir(&home).unwrap();
        let system = dir.0.join("heartbeat.conf");
        let none = |_: &str| None;
        let (_, file, _) = read(&inputs(&home, &system, &none)).unwrap();
        assert_eq!(
            file,
            ConfigFile::Missing(vec![home.join(DEFAULT_FILE_NAME), system.clone()])
        );

        fs::write(&system, r#"{"interval": 7}"#).unwrap();
        let (layer, file, _) = read(&inputs(&home, &system, &none)).unwrap();
        assert_eq!(file, ConfigFile::Loaded(system.clone()));
        assert_eq!(layer.get(Key::Interval).unwrap().text, "7");

        fs::write(home.join(DEFAULT_FILE_NAME), r#"{"interval": 9}"#).unwrap();
        let (layer, file, _) = read(&inputs(&home, &system, &none)).unwrap();
        assert_eq!(file, ConfigFile::Loaded(home.join(DEFAULT_FILE_NAME)));
        assert_eq!(layer.get(Key::Interval).unwrap().text, "9");

        // Named outright, it wins over both, and must exist.
        let named = |name: &str| {
            (name == "STACKSENSE_CONFIG").then(|| OsString::from("/nonexistent/x.conf"))
        };
        let errs = read(&inputs(&home, &system, &named)).unwrap_err();
        assert!(
            errs[0]
                .to_string()
                .starts_with("config file (from env STACKSENSE_CONFIG): cannot read")
        );
    }

    #[test]
    fn the_python_agents_file_is_pointed_out_when_nothing_else_is_there() {
        let dir = Dir::new("python");
        let system = dir.0.join("heartbeat.conf");
        let none = |_: &str| None;
        let (_, _, warnings) = read(&inputs(&dir.0, &system, &none)).unwrap();
        assert!(warnings.is_empty());
        fs::write(dir.0.join(SERVER_AGENT_FILE_NAME), "{}").unwrap();
        let (_, _, warnings) = read(&inputs(&dir.0, &system, &none)).unwrap();
        assert!(
            warnings[0].contains("is not read unless named"),
            "{warnings:?}"
        );
    }
}
