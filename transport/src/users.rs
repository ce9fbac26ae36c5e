//! Repository-server users, stored in the repository as sealed records (see `cairn_engine::records`),
//! with argon2id password hashes in PHC form. A user is `USER@HOST`; the name decides which snapshots the
//! user may create and read (see [`crate::acl`]).

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use cairn_engine::records::RecordKind;
use cairn_engine::Repository;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Errors managing users.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("invalid user name {0:?}: expected USER@HOST (letters, digits, '.', '_' or '-' on each side)")]
    BadName(String),
    #[error("user {0} already exists")]
    Exists(String),
    #[error("user {0} does not exist")]
    Missing(String),
    #[error("the password must not be empty")]
    EmptyPassword,
    #[error("hashing the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Engine(#[from] cairn_engine::Error),
}

/// A stored user.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// May read and write every snapshot.
    #[serde(default)]
    pub admin: bool,
    /// Has its own hashing key (no cross-user deduplication, no existence probing).
    #[serde(default)]
    pub isolated: bool,
    pub created: DateTime<Utc>,
}

impl User {
    /// The user part of `USER@HOST`.
    pub fn user_part(&self) -> &str {
        self.name.split_once('@').map(|(u, _)| u).unwrap_or(&self.name)
    }

    /// The host part of `USER@HOST`.
    pub fn host_part(&self) -> &str {
        self.name.split_once('@').map(|(_, h)| h).unwrap_or("")
    }

    /// Checks a password in constant time (argon2's verifier compares the digests in constant time).
    pub fn check_password(&self, password: &str) -> bool {
        Argon2::default().verify_password(password.as_bytes(), self.password_hash.as_str()).is_ok()
    }
}

/// Checks `USER@HOST`.
pub fn validate_name(name: &str) -> Result<(), UserError> {
    let part_ok =
        |p: &str| !p.is_empty() && p.len() <= 64 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    match name.split_once('@') {
        Some((user, host)) if part_ok(user) && part_ok(host) => Ok(()),
        _ => Err(UserError::BadName(name.to_string())),
    }
}

fn hash_password(password: &str) -> Result<String, UserError> {
    if password.is_empty() {
        return Err(UserError::EmptyPassword);
    }
    let salt = argon2::password_hash::generate_salt();
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// Adds a user.
pub fn add(repo: &Repository, name: &str, password: &str, admin: bool, isolated: bool) -> Result<User, UserError> {
    validate_name(name)?;
    if repo.get_record::<User>(RecordKind::User, name)?.is_some() {
        return Err(UserError::Exists(name.to_string()));
    }
    let user =
        User { name: name.to_string(), password_hash: hash_password(password)?, admin, isolated, created: Utc::now() };
    repo.put_record(RecordKind::User, name, &user)?;
    Ok(user)
}

/// Changes a user's password and/or admin flag.
pub fn set(repo: &Repository, name: &str, password: Option<&str>, admin: Option<bool>) -> Result<User, UserError> {
    let mut user = get(repo, name)?.ok_or_else(|| UserError::Missing(name.to_string()))?;
    if let Some(p) = password {
        user.password_hash = hash_password(p)?;
    }
    if let Some(a) = admin {
        user.admin = a;
    }
    repo.put_record(RecordKind::User, name, &user)?;
    Ok(user)
}

/// One user.
pub fn get(repo: &Repository, name: &str) -> Result<Option<User>, UserError> {
    validate_name(name)?;
    Ok(repo.get_record(RecordKind::User, name)?)
}

/// Every user.
pub fn list(repo: &Repository) -> Result<Vec<User>, UserError> {
    Ok(repo.list_records::<User>(RecordKind::User)?.into_iter().map(|(_, u)| u).collect())
}

/// Deletes a user.
pub fn delete(repo: &Repository, name: &str) -> Result<(), UserError> {
    validate_name(name)?;
    if repo.delete_record(RecordKind::User, name)? {
        Ok(())
    } else {
        Err(UserError::Missing(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cairn_engine::format::CreateOptions;
    use cairn_engine::storage::MemoryStorage;

    use super::*;

    #[test]
    fn users_round_trip() {
        let repo = Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap();
        let alice = add(&repo, "alice@laptop", "s3cret", false, false).unwrap();
        assert!(alice.check_password("s3cret"));
        assert!(!alice.check_password("wrong"));
        assert!(!alice.password_hash.contains("s3cret"));
        assert!(matches!(add(&repo, "alice@laptop", "x", false, false), Err(UserError::Exists(_))));
        assert!(matches!(add(&repo, "bad name", "x", false, false), Err(UserError::BadName(_))));
        set(&repo, "alice@laptop", Some("new"), Some(true)).unwrap();
        let alice = get(&repo, "alice@laptop").unwrap().unwrap();
        assert!(alice.admin && alice.check_password("new"));
        assert_eq!(list(&repo).unwrap().len(), 1);
        delete(&repo, "alice@laptop").unwrap();
        assert!(matches!(delete(&repo, "alice@laptop"), Err(UserError::Missing(_))));
    }
}
