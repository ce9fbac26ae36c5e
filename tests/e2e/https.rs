//! A small blocking HTTPS (and plain HTTP) client for the UI server tests: one request per connection,
//! TLS 1.3 pinned to the fingerprint the server printed, using the transport crate's pinned verifier.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use cairn_transport::tls::{parse_fingerprint, pinned_client_config, PinnedVerifier};
use rustls::pki_types::ServerName;
use serde_json::Value;

/// A response: status, lower-cased headers (repeated ones joined with "\n") and the body.
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Talks to one server.
pub struct Client {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    /// A client for `https://addr` that trusts only the certificate with this fingerprint.
    pub fn pinned(addr: SocketAddr, fingerprint: &str) -> Self {
        let verifier = PinnedVerifier::new(parse_fingerprint(fingerprint).expect("fingerprint"));
        let config = pinned_client_config(verifier, b"http/1.1").expect("client config");
        Self { addr, tls: Some(Arc::new(config)) }
    }

    /// A client for `http://addr`.
    pub fn plain(addr: SocketAddr) -> Self {
        Self { addr, tls: None }
    }

    /// Sends one request; `headers` are (name, value) pairs.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Response {
        let tcp = TcpStream::connect(self.addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let body = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(&body);
        match &self.tls {
            Some(config) => {
                let name = ServerName::IpAddress(self.addr.ip().into());
                let conn = rustls::ClientConnection::new(config.clone(), name).expect("TLS client");
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                stream.write_all(&raw).expect("send");
                read_response(stream)
            }
            None => {
                let mut tcp = tcp;
                tcp.write_all(&raw).expect("send");
                read_response(tcp)
            }
        }
    }
}

fn read_response(stream: impl Read) -> Response {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{line:?}"));
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header");
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':').expect("header line");
        let entry = headers.entry(name.trim().to_ascii_lowercase()).or_default();
        if !entry.is_empty() {
            entry.push('\n');
        }
        entry.push_str(value.trim());
    }
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).expect("content-length");
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).expect("body");
    Response { status, headers, body }
}
