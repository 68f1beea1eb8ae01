//! How the agent trusts a server: the bundled roots, a CA file, or a pinned
//! public key (curl's `sha256//BASE64`). One rustls `ClientConfig` per
//! client for the life of the process (so TLS sessions resume), and the
//! connector that puts it on a connection.
//!
//! A pin replaces the chain check: the key is the server's identity, as
//! with an SSH host key, so a self-signed certificate (even one made as
//! CA:TRUE by `openssl req -x509`), for any name and past its dates, is
//! accepted when, and only when, its key hashes to a pin. The handshake's
//! signature is still verified, so only the key's holder gets through.

use std::fmt;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

/// A pin's prefix: the hash is SHA-256 of the certificate's
/// SubjectPublicKeyInfo, as curl's `--pinnedpubkey` and HPKP take it.
const PIN_PREFIX: &str = "sha256//";

/// The server keys to trust, each a SHA-256 of a SubjectPublicKeyInfo.
#[derive(Clone, PartialEq, Eq)]
pub struct Pins(Vec<[u8; 32]>);

impl fmt::Debug for Pins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl fmt::Display for Pins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.0.iter().map(pin_text).collect();
        f.write_str(&shown.join(";"))
    }
}

impl Pins {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    fn accepts(&self, hash: &[u8; 32]) -> bool {
        self.0.iter().any(|h| h == hash)
    }
}

/// `sha256//BASE64`, several separated by `;` as curl takes them.
pub fn parse_pins(text: &str) -> Result<Pins, String> {
    const EXPECTED: &str = "expected sha256// and the base64 of 32 bytes (44 characters), \
        several separated by ;, as stacksense-heartbeat --check prints it";
    let mut pins = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some(b64) = part.strip_prefix(PIN_PREFIX) else {
            return Err(format!(
                "has a pin that does not start with sha256//; {EXPECTED}"
            ));
        };
        let hash = base64_decode(b64)
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| format!("has a pin that is not base64 of 32 bytes; {EXPECTED}"))?;
        pins.push(hash);
    }
    if pins.is_empty() {
        return Err(format!("holds no pin; {EXPECTED}"));
    }
    Ok(Pins(pins))
}

fn pin_text(hash: &[u8; 32]) -> String {
    format!("{PIN_PREFIX}{}", base64_encode(hash))
}

/// The pin of a certificate's key, as `pinned_pubkey` takes it; None when
/// the certificate cannot be parsed.
pub fn pin_of(cert: &CertificateDer<'_>) -> Option<String> {
    spki_hash(cert).map(|h| pin_text(&h))
}

fn spki_hash(cert: &CertificateDer<'_>) -> Option<[u8; 32]> {
    let ee = webpki::EndEntityCert::try_from(cert).ok()?;
    let spki = ee.subject_public_key_info();
    let digest = ring::digest::digest(&ring::digest::SHA256, spki.as_ref());
    digest.as_ref().try_into().ok()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(B64[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with its padding; None for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let pad = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if pad > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, quad) in bytes.chunks(4).enumerate() {
        let last = i + 1 == bytes.len() / 4;
        let mut n = 0u32;
        for (j, &c) in quad.iter().enumerate() {
            let v = match c {
                b'=' if last && j >= 4 - pad => 0,
                c => B64.iter().position(|&x| x == c)? as u32,
            };
            n = n << 6 | v;
        }
        let take = if last { 3 - pad } else { 3 };
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    Some(out)
}

/// What a client trusts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The bundled Mozilla roots (webpki-roots).
    Bundled,
    /// The CAs of a CA file, instead of the bundled roots.
    Cas(Arc<Vec<ureq::tls::Certificate<'static>>>),
    /// Exactly these server keys.
    Pinned(Pins),
}

/// The key the last rejected server showed, for `--check` to print as a pin.
#[derive(Debug, Default)]
pub struct Rejected(Mutex<Option<String>>);

impl Rejected {
    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn record(&self, cert: &CertificateDer<'_>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = pin_of(cert);
    }
}

/// The error a pinned connection fails with when the key is not pinned.
#[derive(Debug)]
pub struct PinMismatch {
    /// The pin of the key the server showed.
    pub presented: Option<String>,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.presented {
            Some(pin) => write!(f, "the server's key {pin} is not pinned"),
            None => f.write_str("the server's certificate cannot be parsed"),
        }
    }
}

impl std::error::Error for PinMismatch {}

/// The rustls configuration for `trust`, and where it records the key of a
/// server it rejects. Fails only on a CA file rustls cannot use, which the
/// config has already refused.
pub fn client_config(trust: &Trust) -> Result<(Arc<ClientConfig>, Arc<Rejected>), rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let rejected = Arc::new(Rejected::default());
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::Pinned(pins) => Arc::new(PinnedKey {
            pins: pins.clone(),
            algorithms,
            rejected: Arc::clone(&rejected),
        }),
        Trust::Bundled | Trust::Cas(_) => {
            let mut roots = rustls::RootCertStore::empty();
            match trust {
                Trust::Cas(certs) => {
                    for cert in certs.iter() {
                        roots.add(CertificateDer::from(cert.der().to_vec()))?;
                    }
                }
                _ => roots.roots = webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }
            let inner =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|e| rustls::Error::General(e.to_string()))?;
            Arc::new(Recording {
                inner,
                rejected: Arc::clone(&rejected),
            })
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((Arc::new(config), rejected))
}

/// webpki's verdict, with the key of a rejected certificate kept.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    rejected: Arc<Rejected>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        if verdict.is_err() {
            self.rejected.record(end_entity);
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts a server whose end-entity key is pinned; nothing else.
#[derive(Debug)]
struct PinnedKey {
    pins: Pins,
    algorithms: WebPkiSupportedAlgorithms,
    rejected: Arc<Rejected>,
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match spki_hash(end_entity) {
            Some(hash) if self.pins.accepts(&hash) => Ok(ServerCertVerified::assertion()),
            hash => {
                self.rejected.record(end_entity);
                let mismatch = PinMismatch {
                    presented: hash.map(|h| pin_text(&h)),
                };
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Other(rustls::OtherError(Arc::new(mismatch))),
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Puts TLS with our configuration on an https connection (ureq's own
/// rustls connector builds its configuration from settings of its own and
/// cannot take a verifier).
#[derive(Debug)]
pub struct TlsConnector(pub Arc<ClientConfig>);

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let name =
            ServerName::try_from(host).map_err(|_| ureq::Error::Tls("invalid server name"))?;
        let mut conn = ClientConnection::new(Arc::clone(&self.0), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// A self-signed certificate made with `openssl req -x509` is CA:TRUE, and
/// TLS clients refuse a CA certificate as the server's own: every beat
/// would fail although `--ca-file` names exactly the server's certificate.
/// True when every certificate of a CA file is such a CA and one of them
/// names `host`.
pub fn only_the_servers_own_ca_cert(certs: &[ureq::tls::Certificate<'static>], host: &str) -> bool {
    let Ok(name) = ServerName::try_from(host) else {
        return false;
    };
    let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let mut names_server = false;
    for cert in certs {
        let der = CertificateDer::from(cert.der());
        let (Ok(ee), Ok(anchor)) = (
            webpki::EndEntityCert::try_from(&der),
            webpki::anchor_from_trusted_cert(&der),
        ) else {
            return false;
        };
        // Verified as a server certificate against itself: a CA says so.
        let anchors = [anchor];
        let as_server = ee.verify_for_usage(
            algs.all,
            &anchors,
            &[],
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        );
        if !matches!(as_server, Err(webpki::Error::CaUsedAsEndEntity)) {
            return false;
        }
        names_server |= ee.verify_is_valid_for_subject_name(&name).is_ok();
    }
    names_server
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_refuses_what_is_not_base64() {
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            assert_eq!(base64_decode(&base64_encode(bytes)).as_deref(), Some(bytes));
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        for bad in ["Zm9", "Zm9v!mFy", "Z===", "=Zm8", "Zm8=Zm8="] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn pins_take_curls_form() {
        let one = format!("sha256//{}", base64_encode(&[7u8; 32]));
        let pins = parse_pins(&one).unwrap();
        assert!(pins.accepts(&[7u8; 32]) && !pins.accepts(&[8u8; 32]));
        assert_eq!(pins.to_string(), one);
        let two = format!("{one}; sha256//{}", base64_encode(&[8u8; 32]));
        assert_eq!(parse_pins(&two).unwrap().len(), 2);
        for bad in [
            "",
            ";",
            "sha1//AAAA",
            "sha256//AAAA",
            "sha256//not base64!",
            &one[..20],
        ] {
            assert!(parse_pins(bad).is_err(), "{bad:?}");
        }
    }
}
