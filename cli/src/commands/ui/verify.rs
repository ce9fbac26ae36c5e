//! Before the launcher sends anyone to the server's address, it checks that what answers there is the
//! server it started: a TLS handshake that accepts only the certificate whose SHA-256 the server printed
//! (the transport crate's pinned verifier, which also checks the handshake signature), then one request
//! with the one-time password that must be accepted.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;
use cairn_transport::tls::{parse_fingerprint, pinned_client_config, PinnedVerifier};
use rustls::pki_types::ServerName;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Connects to `addr` (over TLS pinned to `fingerprint` unless it is `None`, which is --insecure) and logs
/// in with `user:password`.
pub fn check(addr: SocketAddr, fingerprint: Option<&str>, user: &str, password: &str) -> Result<()> {
    let tcp = TcpStream::connect_timeout(&addr, TIMEOUT).with_context(|| format!("connecting to {addr}"))?;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    tcp.set_write_timeout(Some(TIMEOUT))?;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let request = format!(
        "GET /api/v1/session HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {basic}\r\nConnection: close\r\n\r\n"
    );
    let status = match fingerprint {
        Some(fingerprint) => {
            let verifier = PinnedVerifier::new(parse_fingerprint(fingerprint)?);
            let config = pinned_client_config(verifier.clone(), b"http/1.1")?;
            let conn = rustls::ClientConnection::new(Arc::new(config), ServerName::IpAddress(addr.ip().into()))?;
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            if let Err(e) = tls.write_all(request.as_bytes()).and_then(|_| tls.flush()) {
                match verifier.presented_hex() {
                    Some(seen) if !seen.eq_ignore_ascii_case(fingerprint) => bail!(
                        "{addr} presented certificate {seen}, not the one the server printed ({fingerprint}): \
                         something else answers there"
                    ),
                    _ => return Err(e).with_context(|| format!("TLS with {addr}")),
                }
            }
            status_line(tls)?
        }
        None => {
            let mut tcp = tcp;
            tcp.write_all(request.as_bytes())?;
            status_line(tcp)?
        }
    };
    if status != 200 {
        bail!("{addr} refused the server's own password (HTTP {status}): something else answers there");
    }
    Ok(())
}

fn status_line(stream: impl std::io::Read) -> Result<u16> {
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).context("reading the server's answer")?;
    line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).with_context(|| format!("not an HTTP answer: {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_transport::tls::{server_config, ServerIdentity};
    use std::net::TcpListener;

    /// A TLS server with its own certificate that answers every request with `HTTP/1.1 200`.
    fn impostor() -> (SocketAddr, ServerIdentity) {
        let identity = ServerIdentity::generate(&["127.0.0.1".into()]).unwrap();
        let config = Arc::new(server_config(&identity, b"http/1.1").unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for tcp in listener.incoming().map_while(Result::ok) {
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut line = String::new();
                if BufReader::new(&mut tls).read_line(&mut line).is_ok() {
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                    let _ = tls.flush();
                }
            }
        });
        (addr, identity)
    }

    #[test]
    fn only_the_printed_certificate_is_accepted() {
        let (addr, identity) = impostor();
        check(addr, Some(&identity.fingerprint()), "cairn", "pw").unwrap();
        let other = ServerIdentity::generate(&["127.0.0.1".into()]).unwrap();
        let err = check(addr, Some(&other.fingerprint()), "cairn", "pw").expect_err("refused");
        assert!(err.to_string().contains("something else answers there"), "{err:#}");
        assert!(err.to_string().contains(&identity.fingerprint()), "names what was presented: {err:#}");
    }
}
