//! The engine's error type. Callers branch on [`Error::kind`] rather than on message text.

use std::path::PathBuf;

use crate::storage::StorageError;

/// Result with the engine's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely, for callers that decide what to do next (exit code, retry, message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A blob, snapshot, path or repository that does not exist.
    NotFound,
    /// The password does not open the repository.
    WrongPassword,
    /// Stored bytes failed an integrity check or could not be decoded.
    Corrupt,
    /// The caller passed something invalid.
    InvalidArgument,
    /// Reading or writing storage or local files failed.
    Io,
    /// The operation was cancelled.
    Cancelled,
}

/// Errors from the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("invalid repository password")]
    WrongPassword,
    #[error("no repository found: {0}")]
    NoRepository(String),
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{path}: {source}")]
    LocalIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("operation cancelled")]
    Cancelled,
    #[error("server: {0}")]
    Remote(String),
    #[error("permission denied: {0}")]
    Denied(String),
    #[error("unsupported repository: {0}")]
    Unsupported(String),
    #[error("the backup could not refresh its session marker for {0} s (paused, or storage unreachable); nothing was recorded, run it again")]
    SessionLapsed(u64),
    #[error("{0} problem(s) found")]
    ProblemsFound(usize),
}

impl Error {
    /// The coarse kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Storage(e) if e.is_not_found() => ErrorKind::NotFound,
            Error::Storage(_) | Error::LocalIo { .. } | Error::SessionLapsed(_) => ErrorKind::Io,
            Error::ProblemsFound(_) => ErrorKind::Corrupt,
            Error::WrongPassword => ErrorKind::WrongPassword,
            Error::NoRepository(_) | Error::NotFound(_) => ErrorKind::NotFound,
            Error::Corrupt { .. } | Error::Unsupported(_) => ErrorKind::Corrupt,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Remote(_) => ErrorKind::Io,
            Error::Denied(_) => ErrorKind::InvalidArgument,
        }
    }

    /// Shorthand for a [`Error::Corrupt`].
    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt { what: what.into(), detail: detail.into() }
    }

    /// Shorthand for a [`Error::LocalIo`].
    pub fn local(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::LocalIo { path: path.into(), source }
    }
}
