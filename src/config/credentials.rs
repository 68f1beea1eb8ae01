//! The files settings point at: the token (inline, a file, or a systemd
//! credential) and the CA file. Their contents are checked here, so a beat
//! never finds out.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{About, ConfigError};
use super::keys::Key;
use super::locate::world_readable;
use super::source::{Raw, Setting, Source};
use super::{CaBundle, Token, shown, value};
use crate::files::read_small_file;
use crate::text::{self, describe_io};

/// How the token is given: inline (env/file) or as a path to read.
#[derive(Debug, PartialEq)]
pub enum TokenSpec {
    Inline(Raw),
    File(Raw),
}

/// The token, the file it was read from (re-read when the server refuses
/// it: a rotated token is picked up without a restart), and a warning if
/// that file is readable by everyone.
pub type TokenRead = (Setting<Token>, Option<PathBuf>, Option<String>);

pub fn read_token(spec: TokenSpec) -> Result<TokenRead, ConfigError> {
    let mut warning = None;
    let mut file = None;
    let (text, source) = match spec {
        TokenSpec::Inline(raw) => (raw.text, raw.source),
        TokenSpec::File(raw) => {
            file = Some(PathBuf::from(&raw.text));
            let path = Path::new(&raw.text);
            // The path is not shown (see ConfigError::value); its source is.
            let text = read_small_file(path).map_err(|e| ConfigError {
                about: About::Setting(Key::TokenFile),
                source: Some(raw.source.clone()),
                message: format!(
                    "cannot read the file it names: {} (the value is not shown: it may be a secret)",
                    describe_io(&e)
                ),
            })?;
            if !matches!(raw.source, Source::Credential(_)) {
                warning = world_readable(path, "token file");
            }
            (text, raw.source)
        }
    };
    // The token's text never goes into a message, not even a bad one.
    let value = value::token(&text).map_err(|message| ConfigError {
        about: About::Setting(Key::Token),
        source: Some(source.clone()),
        message,
    })?;
    // From here on no line or body we write can show it.
    text::hide(&value);
    let token = Setting {
        value: Token(value),
        source,
    };
    Ok((token, file, warning))
}

/// The token now in `file`, when it holds a valid one: what a rotation
/// (`create_agent_token` again, the file rewritten) left there.
pub fn reread_token(file: &Path) -> Option<String> {
    value::token(&read_small_file(file).ok()?).ok()
}

pub fn read_ca(raw: &Raw) -> Result<Setting<CaBundle>, ConfigError> {
    let path = PathBuf::from(&raw.text);
    let error = |message: String| ConfigError {
        about: About::Setting(Key::CaFile),
        source: Some(raw.source.clone()),
        message,
    };
    let text = read_small_file(&path)
        .map_err(|e| error(format!("cannot read {}: {}", shown(&path), describe_io(&e))))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(text.as_bytes()) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => {
                let why = text::untrusted(&e.to_string());
                return Err(error(format!("{} is not valid PEM: {why}", shown(&path))));
            }
        }
    }
    if certs.is_empty() {
        return Err(error(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            shown(&path)
        )));
    }
    // rustls would refuse certificates it cannot use at the first beat;
    // we would rather say so now.
    let mut store = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        let der = rustls::pki_types::CertificateDer::from(cert.der().to_vec());
        store.add(der).map_err(|e| {
            error(format!(
                "certificate {} in {} cannot be used as a CA: {e}",
                i + 1,
                shown(&path)
            ))
        })?;
    }
    Ok(Setting {
        value: CaBundle {
            path,
            certs: Arc::new(certs),
        },
        source: raw.source.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_tokens_are_reported_without_their_text() {
        let e = read_token(TokenSpec::Inline(Raw::new(
            "s3cret with space",
            Source::Env("STACKSENSE_TOKEN"),
        )))
        .unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(
            e.to_string()
                .starts_with("token (from env STACKSENSE_TOKEN)")
        );
    }
}
