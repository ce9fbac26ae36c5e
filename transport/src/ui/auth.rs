//! Who may use the UI server: HTTP Basic credentials checked in constant time, a short-lived session
//! cookie signed with HMAC-SHA256 so a browser need not resend the password, and the CSRF token that
//! state-changing requests must carry. Pure logic over header values; the server decides what to answer.

use base64::Engine as _;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "cairn-session";
/// Header that carries the CSRF token on POST, PUT, PATCH and DELETE.
pub const CSRF_HEADER: &str = "x-cairn-csrf-token";
/// How long a session cookie is valid.
pub const SESSION_SECONDS: i64 = 600;

/// The UI user's credentials and the key that signs sessions.
pub struct Auth {
    username: String,
    password: String,
    key: hmac::Key,
    /// Sent with `Set-Cookie` (false only with `--insecure`, where plain HTTP could not return it).
    secure_cookie: bool,
}

/// What a request's credentials amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A valid session cookie.
    Session,
    /// Valid Basic credentials: the response should set a fresh cookie.
    Password,
    /// No acceptable credentials (missing, wrong, or a cookie that fails its signature).
    Denied,
}

/// Errors building an authenticator.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the UI password must not be empty")]
    EmptyPassword,
    #[error("the cookie signing key must not be empty")]
    EmptyKey,
    #[error("no randomness available")]
    Random,
}

/// 32 random bytes as 64 hex digits: the one-time password `--random-password` prints.
pub fn random_password() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| AuthError::Random)?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Auth {
    /// An authenticator for one user. `signing_key` is `--auth-cookie-signing-key` (random when absent).
    pub fn new(
        username: &str,
        password: &str,
        signing_key: Option<&str>,
        secure_cookie: bool,
    ) -> Result<Self, AuthError> {
        if password.is_empty() {
            return Err(AuthError::EmptyPassword);
        }
        let key = match signing_key {
            Some("") => return Err(AuthError::EmptyKey),
            Some(k) => hmac::Key::new(hmac::HMAC_SHA256, k.as_bytes()),
            None => hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new()).map_err(|_| AuthError::Random)?,
        };
        Ok(Self { username: username.to_string(), password: password.to_string(), key, secure_cookie })
    }

    /// Judges a request from its `Authorization` and `Cookie` header values at time `now` (Unix seconds).
    /// A cookie that is present but forged or tampered with denies the request outright, even with a
    /// correct password; an authentic but expired cookie is ignored.
    pub fn check(&self, authorization: Option<&str>, cookies: Option<&str>, now: i64) -> Verdict {
        if let Some(value) = cookies.and_then(|c| cookie_value(c, COOKIE_NAME)) {
            match self.verify_session(value, now) {
                Session::Valid => return Verdict::Session,
                Session::Forged => return Verdict::Denied,
                Session::Expired => {}
            }
        }
        match authorization.and_then(parse_basic) {
            Some((user, pass)) if self.credentials_match(&user, &pass) => Verdict::Password,
            _ => Verdict::Denied,
        }
    }

    /// Constant-time comparison of `user:password` (both compared, whatever the first yields).
    fn credentials_match(&self, user: &str, pass: &str) -> bool {
        let given = hmac::sign(&self.key, format!("{user}\0{pass}").as_bytes());
        hmac::verify(&self.key, format!("{}\0{}", self.username, self.password).as_bytes(), given.as_ref()).is_ok()
    }

    /// A `Set-Cookie` value for a new session valid from `now`.
    pub fn issue_cookie(&self, now: i64) -> String {
        let mut nonce = [0u8; 16];
        // A failed random source only weakens uniqueness, not the signature.
        let _ = SystemRandom::new().fill(&mut nonce);
        let expires = now + SESSION_SECONDS;
        let payload = format!("{expires}.{}", hex(&nonce));
        let tag = hmac::sign(&self.key, self.session_message(&payload).as_bytes());
        let value = format!("{payload}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref()));
        format!(
            "{COOKIE_NAME}={value}; Path=/; Max-Age={SESSION_SECONDS}; HttpOnly; SameSite=Strict{}",
            if self.secure_cookie { "; Secure" } else { "" }
        )
    }

    fn session_message(&self, payload: &str) -> String {
        format!("cairn-session-v1\0{}\0{payload}", self.username)
    }

    fn verify_session(&self, value: &str, now: i64) -> Session {
        let Some((payload, tag)) = value.rsplit_once('.') else { return Session::Forged };
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tag) else { return Session::Forged };
        if hmac::verify(&self.key, self.session_message(payload).as_bytes(), &tag).is_err() {
            return Session::Forged;
        }
        match payload.split_once('.').and_then(|(exp, _)| exp.parse::<i64>().ok()) {
            Some(expires) if now < expires => Session::Valid,
            Some(_) => Session::Expired,
            None => Session::Forged,
        }
    }

    /// The CSRF token of this server run: HMAC of a fixed label under the signing key, so only a page
    /// served by this server (or a caller that asked `/api/v1/session` with credentials) knows it.
    pub fn csrf_token(&self) -> String {
        hex(hmac::sign(&self.key, b"cairn-csrf-v1").as_ref())
    }

    /// Checks a presented CSRF token in constant time.
    pub fn csrf_ok(&self, presented: Option<&str>) -> bool {
        let Some(presented) = presented else { return false };
        let given = hmac::sign(&self.key, presented.as_bytes());
        hmac::verify(&self.key, self.csrf_token().as_bytes(), given.as_ref()).is_ok()
    }

    pub fn username(&self) -> &str {
        &self.username
    }
}

enum Session {
    Valid,
    Expired,
    Forged,
}

/// `Basic base64(user:password)` → (user, password).
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// The value of one cookie in a `Cookie` header.
fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').filter_map(|part| part.trim().split_once('=')).find(|(n, _)| *n == name).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
    }

    fn cookie_of(set_cookie: &str) -> String {
        set_cookie.split(';').next().unwrap().to_string()
    }

    #[test]
    fn basic_credentials() {
        let auth = Auth::new("cairn", "pw", None, true).unwrap();
        assert_eq!(auth.check(Some(&basic("cairn", "pw")), None, 0), Verdict::Password);
        assert_eq!(auth.check(Some(&basic("cairn", "pW")), None, 0), Verdict::Denied);
        assert_eq!(auth.check(Some(&basic("other", "pw")), None, 0), Verdict::Denied);
        assert_eq!(auth.check(Some("Bearer x"), None, 0), Verdict::Denied);
        assert_eq!(auth.check(Some("Basic !!!"), None, 0), Verdict::Denied);
        assert_eq!(auth.check(None, None, 0), Verdict::Denied);
    }

    #[test]
    fn sessions_expire_and_tampering_is_refused() {
        let auth = Auth::new("cairn", "pw", None, true).unwrap();
        let set = auth.issue_cookie(1000);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Secure"));
        let cookie = format!("theme=dark; {}", cookie_of(&set));
        assert_eq!(auth.check(None, Some(&cookie), 1001), Verdict::Session);
        // Expired: falls back to the password, or is denied without one.
        assert_eq!(auth.check(None, Some(&cookie), 1000 + SESSION_SECONDS), Verdict::Denied);
        assert_eq!(auth.check(Some(&basic("cairn", "pw")), Some(&cookie), 5000), Verdict::Password);
        // Changing the expiry breaks the signature, and a forged cookie denies even with the password.
        let value = cookie_of(&set);
        let forged = value.replacen(&(1000 + SESSION_SECONDS).to_string(), "99999999999", 1);
        assert_ne!(forged, value);
        assert_eq!(auth.check(Some(&basic("cairn", "pw")), Some(&forged), 1001), Verdict::Denied);
        // Another server's key does not verify this one's cookies.
        let other = Auth::new("cairn", "pw", None, true).unwrap();
        assert_eq!(other.check(None, Some(&cookie), 1001), Verdict::Denied);
    }

    #[test]
    fn fixed_signing_key_survives_restarts_and_csrf_tokens_check() {
        let a = Auth::new("cairn", "pw", Some("k"), false).unwrap();
        let b = Auth::new("cairn", "pw", Some("k"), false).unwrap();
        let set = a.issue_cookie(0);
        assert!(!set.contains("Secure"));
        assert_eq!(b.check(None, Some(&cookie_of(&set)), 1), Verdict::Session);
        assert_eq!(a.csrf_token(), b.csrf_token());
        assert!(a.csrf_ok(Some(&b.csrf_token())));
        assert!(!a.csrf_ok(Some("nope")));
        assert!(!a.csrf_ok(None));
        assert!(Auth::new("cairn", "", None, true).is_err());
        assert_eq!(random_password().unwrap().len(), 64);
    }
}
