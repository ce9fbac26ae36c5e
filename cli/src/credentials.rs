//! Where the repository password comes from: `--password-file`, `$CAIRN_PASSWORD`, the password stored by
//! `--persist-credentials` (OS keyring, or a 0600 file beside the config when no keyring is available),
//! or a prompt on a terminal, in that order.

use std::fs;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use cairn_engine::storage::s3::S3Credentials;
use serde::{Deserialize, Serialize};

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
    write_private(&path, password.as_bytes())?;
    Ok(Persisted::File(path))
}

/// Replaces the stored password for this config where it is looked up first (the file when there is one,
/// else the keyring, else a new file).
pub fn replace_stored(config: &Path, password: &str) -> Result<Persisted> {
    let file = password_file_for(config);
    if file.exists() {
        write_private(&file, password.as_bytes())?;
        return Ok(Persisted::File(file));
    }
    persist(config, password)
}

/// Writes a file only its owner can read (mode 0600), durably.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    // A new file renamed over the old one: a crash leaves the old password or the new, never half of one.
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
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

/// Removes any stored password (and S3 keys) for this config.
pub fn forget(config: &Path) {
    if let Some(entry) = keyring_entry(config) {
        let _ = entry.delete_credential();
    }
    let _ = fs::remove_file(password_file_for(config));
    let _ = fs::remove_file(s3_file_for(config));
}

/// The file beside the config holding S3 keys given with `--access-key`.
pub fn s3_file_for(config: &Path) -> PathBuf {
    let mut name = config.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".s3-keys");
    config.with_file_name(name)
}

/// S3 keys as stored on disk.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredS3Keys {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_token: Option<String>,
}

/// Keeps S3 keys given on the command line for later commands, in a 0600 file beside the config (they are
/// what the user chose for this repository, so they take precedence over the environment).
pub fn persist_s3(config: &Path, keys: &S3Credentials) -> Result<PathBuf> {
    let path = s3_file_for(config);
    let stored = StoredS3Keys {
        access_key_id: keys.access_key_id.clone(),
        secret_access_key: keys.secret_access_key.clone(),
        session_token: keys.session_token.clone(),
    };
    write_private(&path, &serde_json::to_vec_pretty(&stored)?)?;
    Ok(path)
}

/// The S3 keys stored for this config, if any.
pub fn stored_s3(config: &Path) -> Result<Option<S3Credentials>> {
    let path = s3_file_for(config);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let keys: StoredS3Keys =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not a valid S3 key file", path.display()))?;
    Ok(Some(S3Credentials {
        access_key_id: keys.access_key_id,
        secret_access_key: keys.secret_access_key,
        session_token: keys.session_token,
    }))
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
    prompt_twice("Enter password to create new repository: ")
}

/// Asks for a password, then for it again, on the terminal.
fn prompt_twice(message: &str) -> Result<String> {
    let first = prompt(message)?;
    if prompt("Re-enter password for verification: ")? != first {
        bail!("passwords do not match");
    }
    Ok(first)
}

/// The new password of `repository change-password`: from the file, the flag, `CAIRN_NEW_PASSWORD`, or
/// asked twice on a terminal.
pub fn changed_password(given: Option<String>, file: Option<&Path>) -> Result<String> {
    let password = match (file, given, std::env::var_os("CAIRN_NEW_PASSWORD")) {
        (Some(path), _, _) => read_password_file(path)?,
        (None, Some(password), _) => password,
        (None, None, Some(p)) => p.into_string().map_err(|_| anyhow!("CAIRN_NEW_PASSWORD is not valid UTF-8"))?,
        (None, None, None) => {
            if !std::io::stdin().is_terminal() {
                bail!("no new password: pass --new-password-file, set CAIRN_NEW_PASSWORD, or run on a terminal");
            }
            prompt_twice("Enter new password: ")?
        }
    };
    if password.is_empty() {
        bail!("the new password must not be empty");
    }
    Ok(password)
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
