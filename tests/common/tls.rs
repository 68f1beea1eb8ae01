//! A CA made for this test run and a server certificate for 127.0.0.1 signed by it.

use std::sync::Arc;

pub struct TlsFixture {
    pub ca_pem: String,
    /// The server key's SubjectPublicKeyInfo, DER: what a pin hashes.
    pub spki: Vec<u8>,
    cert: rustls::pki_types::CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TlsFixture {
    pub fn new() -> TlsFixture {
        TlsFixture::for_names(&["127.0.0.1", "localhost"])
    }

    /// A server certificate for `names`, signed by a CA made for it.
    pub fn for_names(names: &[&str]) -> TlsFixture {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "stacksense test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        TlsFixture {
            ca_pem: ca.pem(),
            spki: rcgen::PublicKeyData::subject_public_key_info(&key),
            cert: leaf.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// What `openssl req -x509` makes: one self-signed certificate for
    /// 127.0.0.1 that is also CA:TRUE, served as the server's own.
    pub fn self_signed_ca_as_server() -> TlsFixture {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        TlsFixture {
            ca_pem: cert.pem(),
            spki: rcgen::PublicKeyData::subject_public_key_info(&key),
            cert: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config_with_chain(Vec::new())
    }

    /// The server certificate followed by `more` certificates in the chain
    /// it sends (a client reads the chain before it verifies any of it).
    pub fn server_config_with_chain(
        &self,
        more: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::try_from(self.key_der.clone()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert([vec![self.cert.clone()], more].concat(), key)
            .unwrap();
        Arc::new(config)
    }
}

/// The pin of `spki` as curl's --pinnedpubkey and the agent take it:
/// sha256// and the base64 of its SHA-256.
pub fn pin_of(spki: &[u8]) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let hash = ring::digest::digest(&ring::digest::SHA256, spki);
    let bytes = hash.as_ref();
    let mut out = String::from("sha256//");
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
