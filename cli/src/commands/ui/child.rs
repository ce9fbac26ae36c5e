//! The server process: started with its standard input held by the launcher (so it stops when the
//! launcher goes, however it goes), in its own process group (so a Ctrl-C reaches only the launcher, which
//! then stops it cleanly), with its output going to a log file. A thread reads its stderr: the
//! `SERVER ...:` lines that announce it (the password is never logged), then everything else into the log.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// How long the server may take to announce itself (opening the repository derives its key first).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping server may take before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of unrecognised output kept for the error when the server fails to start.
const TAIL_LINES: usize = 10;

/// What the server announced on stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Announcement {
    pub password: String,
    /// SHA-256 of the certificate (absent with --insecure).
    pub fingerprint: Option<String>,
    /// The certificate as PEM (absent with --insecure).
    pub cert_pem: Option<String>,
    /// `https://IP:PORT`, `https+unix:///path`, or `http://...` with --insecure.
    pub address: String,
}

/// Reads the announcement line by line.
#[derive(Default)]
struct Parser {
    found: Announcement,
}

/// What one stderr line was.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A secret: not to be logged.
    Password,
    /// Part of the announcement, safe to log.
    Announced,
    /// The address: the announcement is complete.
    Complete,
    /// Anything else (log lines, warnings).
    Other,
}

impl Parser {
    fn feed(&mut self, line: &str) -> Result<Line> {
        let Some((key, value)) = line.split_once(": ").filter(|(key, _)| key.starts_with("SERVER ")) else {
            return Ok(Line::Other);
        };
        let value = value.trim().to_string();
        match key {
            "SERVER PASSWORD" => {
                self.found.password = value;
                return Ok(Line::Password);
            }
            "SERVER CERT SHA256" => self.found.fingerprint = Some(value),
            "SERVER CERTIFICATE" => {
                let pem = base64::engine::general_purpose::STANDARD
                    .decode(&value)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| anyhow!("the server printed a certificate that is not base64 of a PEM"))?;
                self.found.cert_pem = Some(pem);
            }
            "SERVER ADDRESS" => {
                self.found.address = value;
                return Ok(Line::Complete);
            }
            _ => return Ok(Line::Other),
        }
        Ok(Line::Announced)
    }

    /// Checks the announcement is whole and consistent: a password; with TLS, a certificate whose
    /// SHA-256 is the printed fingerprint.
    fn finish(self, tls: bool) -> Result<Announcement> {
        let found = self.found;
        if found.password.len() < 32 {
            bail!("the server announced no one-time password");
        }
        if tls {
            let (Some(fingerprint), Some(pem)) = (&found.fingerprint, &found.cert_pem) else {
                bail!("the server announced no certificate");
            };
            let der = CertificateDer::from_pem_slice(pem.as_bytes())
                .map_err(|e| anyhow!("the server printed an unreadable certificate: {e}"))?;
            let actual = cairn_transport::tls::fingerprint(&der);
            if !actual.eq_ignore_ascii_case(fingerprint) {
                bail!("the printed certificate has SHA-256 {actual}, but the server announced {fingerprint}");
            }
        }
        Ok(found)
    }
}

/// A started server that announced itself.
pub struct Server {
    child: Child,
    /// Closing this tells the server to stop.
    stdin: Option<ChildStdin>,
    pub announcement: Announcement,
}

/// Starts `exe args` with the repository password in its environment, and waits for its announcement.
pub fn start(exe: &Path, args: &[OsString], repo_password: &str, log: &File, tls: bool) -> Result<Server> {
    let mut child = Command::new(exe)
        .args(args)
        .env("CAIRN_PASSWORD", repo_password)
        .env_remove("CAIRN_SERVER_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(log.try_clone().context("the log file")?)
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let stdin = child.stdin.take();
    let stderr = child.stderr.take().context("the server's stderr")?;
    let mut log = log.try_clone().context("the log file")?;
    let (tx, rx) = mpsc::channel::<Result<Announcement, String>>();
    std::thread::Builder::new().name("cairn-ui-log".into()).spawn(move || {
        let mut parser = Some(Parser::default());
        let mut tail: Vec<String> = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Some(p) = parser.as_mut() else {
                let _ = writeln!(log, "{line}");
                continue;
            };
            match p.feed(&line) {
                Ok(Line::Password) => {
                    let _ = writeln!(log, "SERVER PASSWORD: (not logged; `cairn ui --show-credentials` prints it)");
                }
                Ok(Line::Announced) => {
                    let _ = writeln!(log, "{line}");
                }
                Ok(Line::Complete) => {
                    let _ = writeln!(log, "{line}");
                    if let Some(p) = parser.take() {
                        let _ = tx.send(p.finish(tls).map_err(|e| e.to_string()));
                    }
                }
                Ok(Line::Other) => {
                    let _ = writeln!(log, "{line}");
                    tail.push(line);
                    if tail.len() > TAIL_LINES {
                        tail.remove(0);
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    parser = None;
                }
            }
        }
        if parser.is_some() {
            let _ = tx.send(Err(if tail.is_empty() { "it printed nothing".to_string() } else { tail.join("\n") }));
        }
    })?;
    let mut server = Server { child, stdin, announcement: Announcement::default() };
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(announcement)) => {
            server.announcement = announcement;
            Ok(server)
        }
        Ok(Err(why)) => {
            server.stop();
            bail!("the server did not start:\n{why}")
        }
        Err(_) => {
            server.stop();
            bail!("the server did not announce itself within {} s", START_TIMEOUT.as_secs())
        }
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the server has exited.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Closes the server's standard input, waits for it to stop, and kills it if it takes too long.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        drop(self.stdin.take());
        let start = Instant::now();
        while start.elapsed() < STOP_TIMEOUT {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_lines_are_recognised_and_the_password_is_marked_secret() {
        let mut p = Parser::default();
        let password = "a".repeat(64);
        assert_eq!(p.feed("DEBUG cairn: starting").unwrap(), Line::Other);
        assert_eq!(p.feed(&format!("SERVER PASSWORD: {password}")).unwrap(), Line::Password);
        assert_eq!(p.feed("SERVER CERT SHA256: 00").unwrap(), Line::Announced);
        assert!(p.feed("SERVER CERTIFICATE: %%%").is_err(), "not base64");
        assert_eq!(p.feed("SERVER ADDRESS: http://127.0.0.1:5").unwrap(), Line::Complete);
        let found = p.finish(false).unwrap();
        assert_eq!((found.password.as_str(), found.address.as_str()), (password.as_str(), "http://127.0.0.1:5"));
    }

    #[test]
    fn a_certificate_that_does_not_match_its_fingerprint_is_refused() {
        let identity = cairn_transport::tls::ServerIdentity::generate(&["localhost".into()]).unwrap();
        let lines = |fingerprint: &str| {
            let mut p = Parser::default();
            p.feed(&format!("SERVER PASSWORD: {}", "b".repeat(64))).unwrap();
            p.feed(&format!("SERVER CERT SHA256: {fingerprint}")).unwrap();
            p.feed(&format!("SERVER CERTIFICATE: {}", identity.pem_base64())).unwrap();
            p.feed("SERVER ADDRESS: https://127.0.0.1:5").unwrap();
            p
        };
        assert!(lines(&identity.fingerprint()).finish(true).is_ok());
        let err = lines(&"0".repeat(64)).finish(true).expect_err("mismatch");
        assert!(err.to_string().contains("but the server announced"), "{err}");
        let mut bare = Parser::default();
        bare.feed(&format!("SERVER PASSWORD: {}", "b".repeat(64))).unwrap();
        assert!(bare.finish(true).is_err(), "TLS without a certificate");
    }
}
