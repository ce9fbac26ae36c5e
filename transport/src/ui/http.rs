//! The API's answers: JSON bodies, and errors with one stable shape,
//! `{"error": {"code": "not_found", "message": "..."}}`, whose `code` callers branch on.

use serde::Serialize;
use serde_json::Value;

/// An API error: an HTTP status and a stable code.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "conflict", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "unauthorized", "valid credentials or a session cookie are required")
    }
    pub fn csrf() -> Self {
        Self::new(403, "csrf_token_required", "state-changing requests need the X-Cairn-Csrf-Token header")
    }
    pub fn method_not_allowed() -> Self {
        Self::new(405, "method_not_allowed", "method not allowed")
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "shutting_down", message)
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        serde_json::json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl From<cairn_engine::Error> for ApiError {
    fn from(e: cairn_engine::Error) -> Self {
        use cairn_engine::ErrorKind;
        let (status, code) = match e.kind() {
            ErrorKind::NotFound => (404, "not_found"),
            ErrorKind::InvalidArgument => (400, "bad_request"),
            ErrorKind::Cancelled => (409, "cancelled"),
            ErrorKind::Corrupt => (500, "corrupt"),
            ErrorKind::WrongPassword => (500, "wrong_password"),
            ErrorKind::Io => (500, "io"),
        };
        Self::new(status, code, e.to_string())
    }
}

/// A successful answer: status and JSON body.
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(body: impl Serialize) -> Result<Self, ApiError> {
        Self::with_status(200, body)
    }
    pub fn accepted(body: impl Serialize) -> Result<Self, ApiError> {
        Self::with_status(202, body)
    }
    fn with_status(status: u16, body: impl Serialize) -> Result<Self, ApiError> {
        let body = serde_json::to_value(body).map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
        Ok(Self { status, body })
    }
}

/// Decodes a query string into (name, value) pairs, percent-decoding both.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Percent-decoding (with `+` as space); invalid escapes are kept as they are.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        assert_eq!(
            query_pairs("source=u%40h%3A%2Fa+b&x=&y"),
            vec![("source".into(), "u@h:/a b".into()), ("x".into(), "".into()), ("y".into(), "".into())]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%BC"), "ü");
    }

    #[test]
    fn errors_have_a_stable_shape() {
        let e = ApiError::from(cairn_engine::Error::NotFound("snapshot x".into()));
        assert_eq!(e.status, 404);
        assert_eq!(e.body()["error"]["code"], "not_found");
        assert!(e.body()["error"]["message"].as_str().unwrap().contains("snapshot x"));
    }
}
