//! Where the repository password comes from: `--password-file`, `$CAIRN_PASSWORD`, the password stored by
//! `--persist-credentials` (OS keyring, or a 0600 file beside the config when no keyring is available),
//! or a prompt on a terminal, in that order.

use std::fs;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

const KEYRING_SERVICE: &str = "cairn";

/// The keyring entry name for a config file: derived from a hash of its absolute path, so several configs
/// (several repositories) keep separate passwords.
fn keyring_user(config: &Path) -> String {
    let absolute = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
    let hash = blake3::hash(absolute.as_os_str().as_encoded_bytes());
    format!("repository-{}", &hash.to_hex()[..16])
}

/// The fallback password file beside the config.
pub fn password_file_for(config: &Path) -> PathBuf {
    let mut name = config.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".password");
    config.with_file_name(name)
}

fn keyring_disabled() -> bool {
    std::env::var_os("CAIRN_DISABLE_KEYRING").is_some_and(|v| v == "1")
}

fn keyring_entry(config: &Path) -> Option<keyring::Entry> {
    if keyring_disabled() {
        return None;
    }
    keyring::Entry::new(KEYRING_SERVICE, &keyring_user(config)).ok()
}

/// Where a persisted password went.
#[derive(Debug, PartialEq, Eq)]
pub enum Persisted {
    Keyring,
    File(PathBuf),
}

/// Stores the password for this config: in the keyring, or in a 0600 file when no keyring works.
pub fn persist(config: &Path, password: &str) -> Result<Persisted> {
    if let Some(entry) = keyring_entry(config) {
        if entry.set_password(password).is_ok() && entry.get_password().ok().as_deref() == Some(password) {
            return Ok(Persisted::Keyring);
        }
    }
    let path = password_file_for(config);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(password.as_bytes())?;
    file.sync_all()?;
    Ok(Persisted::File(path))
}

/// Removes any stored password for this config.
pub fn forget(config: &Path) {
    if let Some(entry) = keyring_entry(config) {
        let _ = entry.delete_credential();
    }
    let _ = fs::remove_file(password_file_for(config));
}

fn stored(config: &Path) -> Option<String> {
    if let Ok(password) = fs::read_to_string(password_file_for(config)) {
        return Some(password);
    }
    keyring_entry(config)?.get_password().ok()
}

fn read_password_file(path: &Path) -> Result<String> {
    let text = fs::read_to_string(path).with_context(|| format!("reading password file {}", path.display()))?;
    Ok(text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_string())
}

/// The password for an existing repository.
pub fn password(password_file: Option<&Path>, config: Option<&Path>, persisted: bool) -> Result<String> {
    if let Some(path) = password_file {
        return read_password_file(path);
    }
    if let Some(p) = std::env::var_os("CAIRN_PASSWORD") {
        return p.into_string().map_err(|_| anyhow!("CAIRN_PASSWORD is not valid UTF-8"));
    }
    if persisted {
        if let Some(p) = config.and_then(stored) {
            return Ok(p);
        }
    }
    prompt("Enter password to open repository: ")
}

/// The password for a new repository (asked twice on a terminal).
pub fn new_password(password_file: Option<&Path>) -> Result<String> {
    if let Some(path) = password_file {
        return read_password_file(path);
    }
    if let Some(p) = std::env::var_os("CAIRN_PASSWORD") {
        return p.into_string().map_err(|_| anyhow!("CAIRN_PASSWORD is not valid UTF-8"));
    }
    let first = prompt("Enter password to create new repository: ")?;
    let again = prompt("Re-enter password for verification: ")?;
    if first != again {
        bail!("passwords do not match");
    }
    Ok(first)
}

fn prompt(message: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("no repository password: set CAIRN_PASSWORD, pass --password-file, or run on a terminal");
    }
    let password = rpassword::prompt_password(message)?;
    if password.is_empty() {
        bail!("the password must not be empty");
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_file_is_private_and_found() {
        std::env::set_var("CAIRN_DISABLE_KEYRING", "1");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("repository.config");
        assert_eq!(persist(&config, "s3cret").unwrap(), Persisted::File(password_file_for(&config)));
        let mode = fs::metadata(password_file_for(&config)).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        assert_eq!(stored(&config).as_deref(), Some("s3cret"));
        forget(&config);
        assert_eq!(stored(&config), None);
        assert_ne!(keyring_user(&config), keyring_user(&dir.path().join("other.config")));
    }
}
