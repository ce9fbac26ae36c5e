//! TLS identities and certificate pinning, shared by the QUIC repository server and the HTTPS UI server.
//!
//! A server presents a self-signed certificate (generated with rcgen, or loaded from PEM files); a client
//! accepts it only if the SHA-256 of its DER equals the fingerprint the user pinned, and still verifies
//! the handshake signature with the certificate's key, so a peer that merely copies the certificate cannot
//! impersonate the server.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Errors setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating a certificate: {0}")]
    Generate(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0} already exists; refusing to overwrite it")]
    Exists(String),
    #[error("invalid certificate fingerprint {0:?}: expected 64 hex digits (SHA-256 of the certificate's DER)")]
    BadFingerprint(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// A server's certificate and private key.
pub struct ServerIdentity {
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    cert_pem: String,
    key_pem: String,
}

/// SHA-256 of a certificate's DER, lower-case hex: what clients pin and `openssl x509 -fingerprint
/// -sha256` prints (without colons).
pub fn fingerprint(cert: &[u8]) -> String {
    hex_of(ring::digest::digest(&ring::digest::SHA256, cert).as_ref())
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a pinned fingerprint: 64 hex digits, colons allowed (as openssl prints them).
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], TlsError> {
    let clean: String = text.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    if clean.len() != 64 || !clean.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TlsError::BadFingerprint(text.to_string()));
    }
    let mut out = [0u8; 32];
    for (i, pair) in clean.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|_| TlsError::BadFingerprint(text.to_string()))?;
        out[i] = u8::from_str_radix(s, 16).map_err(|_| TlsError::BadFingerprint(text.to_string()))?;
    }
    Ok(out)
}

impl ServerIdentity {
    /// A fresh self-signed certificate for these DNS names and IP addresses.
    pub fn generate(names: &[String]) -> Result<Self, TlsError> {
        let certified =
            rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| TlsError::Generate(e.to_string()))?;
        let cert_pem = certified.cert.pem();
        let key_pem = certified.signing_key.serialize_pem();
        Ok(Self {
            cert: certified.cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()),
            cert_pem,
            key_pem,
        })
    }

    /// Loads a PEM certificate and PKCS#8 PEM key.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let read = |p: &Path| {
            fs::read_to_string(p).map_err(|e| TlsError::File { path: p.display().to_string(), message: e.to_string() })
        };
        let cert_pem = read(cert_file)?;
        let key_pem = read(key_file)?;
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| TlsError::File {
            path: cert_file.display().to_string(),
            message: format!("no PEM certificate: {e}"),
        })?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::File {
            path: key_file.display().to_string(),
            message: format!("no PKCS#8 PEM key: {e}"),
        })?;
        Ok(Self { cert, key, cert_pem, key_pem })
    }

    /// An identity from PEM text (a copy for another listener).
    pub fn load_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| TlsError::File { path: "certificate".into(), message: e.to_string() })?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| TlsError::File { path: "key".into(), message: e.to_string() })?;
        Ok(Self { cert, key, cert_pem: cert_pem.to_string(), key_pem: key_pem.to_string() })
    }

    /// The private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// Writes the certificate and key (mode 0600) to new files; refuses to overwrite either.
    pub fn save(&self, cert_file: &Path, key_file: &Path) -> Result<(), TlsError> {
        for p in [cert_file, key_file] {
            if p.exists() {
                return Err(TlsError::Exists(p.display().to_string()));
            }
        }
        let write = |p: &Path, data: &str, mode: u32| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(p)
                .map_err(|e| TlsError::File { path: p.display().to_string(), message: e.to_string() })?;
            f.write_all(data.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| TlsError::File { path: p.display().to_string(), message: e.to_string() })
        };
        write(key_file, &self.key_pem, 0o600)?;
        write(cert_file, &self.cert_pem, 0o644)
    }

    /// SHA-256 fingerprint of the certificate.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert)
    }

    /// The PEM certificate, base64-encoded on one line (as `--tls-print-server-cert` prints it).
    pub fn pem_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.cert_pem.as_bytes())
    }

    /// The PEM certificate.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, for building server configs.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// The crypto provider everything uses (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server config for this identity and ALPN protocol.
pub fn server_config(identity: &ServerIdentity, alpn: &[u8]) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![identity.cert.clone()], identity.key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// Accepts exactly one certificate, by SHA-256 fingerprint, and checks handshake signatures with it.
#[derive(Debug)]
pub struct PinnedVerifier {
    expected: [u8; 32],
    provider: Arc<CryptoProvider>,
    /// The fingerprint the server actually presented, for error messages.
    pub presented: Mutex<Option<String>>,
}

impl PinnedVerifier {
    pub fn new(expected: [u8; 32]) -> Arc<Self> {
        Arc::new(Self { expected, provider: provider(), presented: Mutex::new(None) })
    }

    /// The pinned fingerprint as hex.
    pub fn expected_hex(&self) -> String {
        hex_of(&self.expected)
    }

    /// The fingerprint the server presented, if a handshake got that far.
    pub fn presented_hex(&self) -> Option<String> {
        self.presented.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = fingerprint(end_entity);
        *self.presented.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen.clone());
        if seen == self.expected_hex() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate fingerprint mismatch: pinned {}, server presented {seen}",
                self.expected_hex()
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A rustls client config that trusts only the pinned certificate.
pub fn pinned_client_config(verifier: Arc<PinnedVerifier>, alpn: &[u8]) -> Result<rustls::ClientConfig, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_save_load_and_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let id = ServerIdentity::generate(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        id.save(&cert, &key).unwrap();
        assert!(matches!(id.save(&cert, &key), Err(TlsError::Exists(_))));
        let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&key).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let back = ServerIdentity::load(&cert, &key).unwrap();
        assert_eq!(back.fingerprint(), id.fingerprint());
        assert_eq!(id.fingerprint().len(), 64);
        let with_colons: String = id
            .fingerprint()
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(hex_of(&parse_fingerprint(&with_colons).unwrap()), id.fingerprint());
        assert!(parse_fingerprint("abc").is_err());
    }
}
