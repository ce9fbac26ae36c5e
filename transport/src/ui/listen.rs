//! Where the UI server listens: a TCP address, or a Unix-domain socket that only this user can reach, so
//! that no TCP port is opened at all.
//!
//! A socket is created with mode 0600 inside a directory that must belong to this user and be closed to
//! everyone else (no group or other permission bits; it is created with mode 0700 when missing). The
//! directory is what protects the socket while it is being created: between `bind` and `chmod` the
//! socket briefly has the umask's mode, but no one else can enter the directory to reach it. A stale
//! socket left by a killed server is replaced; a live one, or any other kind of file, is not.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::UiError;

/// Mode of the socket file.
pub const SOCKET_MODE: u32 = 0o600;
/// Mode of a socket directory the server creates.
pub const SOCKET_DIR_MODE: u32 = 0o700;

/// What `--address` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    Tcp(SocketAddr),
    /// An absolute path of a Unix-domain socket.
    Unix(PathBuf),
}

/// A bound listener.
pub(super) enum Listener {
    Tcp(std::net::TcpListener),
    Unix(UnixListener, SocketFile),
}

/// The socket's path, removed when the server stops (or fails to start).
pub(super) struct SocketFile(pub PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Binds the address: a TCP listener, or a private Unix socket.
pub(super) fn bind(addr: &ListenAddress) -> Result<Listener, UiError> {
    match addr {
        ListenAddress::Tcp(addr) => Ok(Listener::Tcp(std::net::TcpListener::bind(addr).map_err(UiError::Bind)?)),
        ListenAddress::Unix(path) => bind_unix(path),
    }
}

fn bind_unix(path: &Path) -> Result<Listener, UiError> {
    let path = std::path::absolute(path).map_err(UiError::Bind)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| UiError::SocketDir(format!("{}: a socket needs a parent directory", path.display())))?;
    private_dir(dir)?;
    remove_stale(&path)?;
    let listener = UnixListener::bind(&path).map_err(UiError::Bind)?;
    let guard = SocketFile(path.clone());
    fs::set_permissions(&path, fs::Permissions::from_mode(SOCKET_MODE)).map_err(UiError::Bind)?;
    Ok(Listener::Unix(listener, guard))
}

/// The effective user id of this process (the owner of `/proc/self`).
fn current_uid() -> Result<u32, UiError> {
    fs::metadata("/proc/self").map(|m| m.uid()).map_err(UiError::Bind)
}

/// Creates `dir` (mode 0700) when missing, then insists it is a directory of this user that no one else
/// can enter or list. Launchers keep their sockets and credentials in such a directory.
pub fn private_dir(dir: &Path) -> Result<(), UiError> {
    if !dir.exists() {
        fs::DirBuilder::new().recursive(true).mode(SOCKET_DIR_MODE).create(dir).map_err(UiError::Bind)?;
    }
    let meta = fs::metadata(dir).map_err(UiError::Bind)?;
    let mode = meta.permissions().mode() & 0o777;
    if !meta.is_dir() {
        return Err(UiError::SocketDir(format!("{} is not a directory", dir.display())));
    }
    if meta.uid() != current_uid()? {
        return Err(UiError::SocketDir(format!(
            "{} belongs to user id {}, not to this user; use a directory only you can enter",
            dir.display(),
            meta.uid()
        )));
    }
    if mode & 0o077 != 0 {
        return Err(UiError::SocketDir(format!(
            "{} has mode {mode:o}: other users could reach the socket; use a directory only you can enter \
             (mode 700)",
            dir.display()
        )));
    }
    Ok(())
}

/// Removes a socket no server answers on; refuses a live socket or any other kind of file.
fn remove_stale(path: &Path) -> Result<(), UiError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(UiError::Bind(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(UiError::SocketDir(format!("{} exists and is not a socket", path.display())));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(UiError::SocketDir(format!("a server already listens on {}", path.display()))),
        Err(_) => fs::remove_file(path).map_err(UiError::Bind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn socket_is_private_and_removed_when_dropped() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("run/cairn/ui.sock");
        let listener = bind(&ListenAddress::Unix(path.clone())).unwrap();
        assert_eq!(mode(&path), SOCKET_MODE);
        assert_eq!(mode(path.parent().unwrap()), SOCKET_DIR_MODE);
        // A live socket is not replaced.
        assert!(matches!(bind(&ListenAddress::Unix(path.clone())), Err(UiError::SocketDir(_))));
        drop(listener);
        assert!(!path.exists(), "the socket file is removed with the listener");
    }

    #[test]
    fn stale_socket_is_replaced_but_other_files_are_not() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("private");
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        let path = dir.join("ui.sock");
        // A socket whose server is gone (bound by a std listener that is then dropped without removal).
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let listener = bind(&ListenAddress::Unix(path.clone())).unwrap();
        drop(listener);
        fs::write(&path, b"not a socket").unwrap();
        assert!(matches!(bind(&ListenAddress::Unix(path.clone())), Err(UiError::SocketDir(_))));
        assert_eq!(fs::read(&path).unwrap(), b"not a socket");
    }

    #[test]
    fn directory_others_can_enter_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("shared");
        fs::DirBuilder::new().mode(0o755).create(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let err = bind(&ListenAddress::Unix(dir.join("ui.sock"))).err().expect("refused");
        assert!(err.to_string().contains("mode 755"), "{err}");
        assert!(!dir.join("ui.sock").exists(), "nothing was created");
    }
}
