//! What a running launcher leaves for `cairn ui --show-credentials`: a file with the server's address,
//! user, one-time password and certificate fingerprint, mode 0600 in a directory only this user can enter
//! (`$XDG_RUNTIME_DIR/cairn`, else `$XDG_CACHE_HOME/cairn/run`), named after the config file so that
//! launchers of different repositories do not collide. The launcher removes it when it exits; a file left
//! by a launcher that was killed is recognised as stale (its process is gone) and removed when found.
//! The same directory holds the server's socket with `--unix-socket` and the certificate as PEM (for
//! `curl --cacert`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

/// The files of one config's launcher.
pub struct Paths {
    pub session: PathBuf,
    pub socket: PathBuf,
    pub cert: PathBuf,
}

impl Paths {
    /// The paths for this config file; creates the private directory when missing.
    pub fn for_config(config: &Path) -> Result<Self> {
        let dir = runtime_dir()?;
        cairn_transport::ui::listen::private_dir(&dir)?;
        let absolute = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
        let hash = blake3::hash(absolute.as_os_str().as_encoded_bytes()).to_hex();
        let stem = format!("ui-{}", &hash[..16]);
        Ok(Self {
            session: dir.join(format!("{stem}.json")),
            socket: dir.join(format!("{stem}.sock")),
            cert: dir.join(format!("{stem}.pem")),
        })
    }
}

fn runtime_dir() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(run) = var("XDG_RUNTIME_DIR") {
        return Ok(run.join("cairn"));
    }
    let cache = var("XDG_CACHE_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .context("neither $XDG_RUNTIME_DIR, $XDG_CACHE_HOME nor $HOME is set")?;
    Ok(cache.join("cairn").join("run"))
}

/// A running launcher and its server.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub launcher_pid: u32,
    /// The launcher's start time (clock ticks after boot), so a reused pid is not taken for it.
    pub launcher_start: u64,
    pub server_pid: u32,
    pub url: String,
    pub username: String,
    pub password: String,
    pub cert_sha256: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub log_file: PathBuf,
}

/// A process's start time: field 22 of `/proc/PID/stat` (after the parenthesised command name, which may
/// itself hold spaces or parentheses).
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(19)?.parse().ok()
}

impl Session {
    fn alive(&self) -> bool {
        process_start(self.launcher_pid) == Some(self.launcher_start)
    }
}

/// Removes the session file (and the certificate copy) when dropped.
pub struct Written<'a>(&'a Paths);

impl Drop for Written<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0.session);
        let _ = fs::remove_file(&self.0.cert);
    }
}

/// Writes the session file (0600, atomically) and, with TLS, the certificate.
pub fn write<'a>(paths: &'a Paths, session: &Session, cert_pem: Option<&str>) -> Result<Written<'a>> {
    let guard = Written(paths);
    if let Some(pem) = cert_pem {
        private_file(&paths.cert, pem.as_bytes())?;
    }
    private_file(&paths.session, &serde_json::to_vec_pretty(session)?)?;
    Ok(guard)
}

/// Writes a file only its owner can read, by a rename so a reader never sees half of it.
fn private_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The running launcher's session, if any; a stale file is removed.
pub fn running(paths: &Paths) -> Result<Option<Session>> {
    let bytes = match fs::read(&paths.session) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", paths.session.display())),
    };
    let session: Option<Session> = serde_json::from_slice(&bytes).ok();
    match session {
        Some(session) if session.alive() => Ok(Some(session)),
        _ => {
            let _ = fs::remove_file(&paths.session);
            let _ = fs::remove_file(&paths.cert);
            Ok(None)
        }
    }
}

/// `cairn ui --show-credentials`: prints how to reach the running launcher's server.
pub fn show(paths: &Paths, config: &Path) -> Result<()> {
    let Some(s) = running(paths)? else {
        bail!("no `cairn ui` is running for {}", config.display());
    };
    outln!("URL: {}", s.url);
    outln!("USER: {}", s.username);
    outln!("PASSWORD: {}", s.password);
    if let Some(fingerprint) = &s.cert_sha256 {
        outln!("CERT SHA256: {fingerprint}");
    }
    if let Some(cert) = &s.cert_file {
        outln!("CERT FILE: {}", cert.display());
        outln!("curl: curl --cacert {} -u {} {}/api/v1/repo/status", cert.display(), s.username, s.url);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_start_is_found_for_this_process_and_not_for_a_missing_one() {
        let me = std::process::id();
        let start = process_start(me).expect("our own start time");
        assert_eq!(process_start(me), Some(start));
        assert_eq!(process_start(u32::MAX), None);
    }

    #[test]
    fn a_session_of_a_dead_launcher_is_stale_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            session: dir.path().join("s.json"),
            socket: dir.path().join("s.sock"),
            cert: dir.path().join("s.pem"),
        };
        let mut session = Session {
            launcher_pid: std::process::id(),
            launcher_start: process_start(std::process::id()).unwrap(),
            server_pid: 1,
            url: "https://127.0.0.1:1".into(),
            username: "cairn".into(),
            password: "p".into(),
            cert_sha256: None,
            cert_file: None,
            log_file: "l".into(),
        };
        {
            let _written = write(&paths, &session, Some("PEM")).unwrap();
            let mode = fs::metadata(&paths.session).unwrap().permissions();
            assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
            assert_eq!(running(&paths).unwrap().unwrap().password, "p");
        }
        assert!(!paths.session.exists() && !paths.cert.exists(), "removed with the guard");
        // Same pid, another start time: a reused pid, not our launcher.
        session.launcher_start += 1;
        std::mem::forget(write(&paths, &session, None).unwrap());
        assert!(running(&paths).unwrap().is_none());
        assert!(!paths.session.exists(), "the stale file is removed");
    }
}
