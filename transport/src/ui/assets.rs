//! The web page, embedded in the binary (no CDN, no build step): `index.html` with this run's CSRF token
//! written into a meta tag, plus one script and one style sheet.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};

use super::http::ApiError;

const INDEX: &str = include_str!("static/index.html");
const APP_JS: &str = include_str!("static/app.js");
const APP_CSS: &str = include_str!("static/app.css");

/// Answers a request for the page or one of its files.
pub fn serve(method: &Method, path: &str, csrf_token: &str) -> Response<Full<Bytes>> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return error(&ApiError::method_not_allowed());
    }
    let (body, content_type) = match path {
        "/" | "/index.html" => (INDEX.replace("{{CSRF_TOKEN}}", csrf_token), "text/html; charset=utf-8"),
        "/app.js" => (APP_JS.to_string(), "text/javascript; charset=utf-8"),
        "/app.css" => (APP_CSS.to_string(), "text/css; charset=utf-8"),
        _ => return error(&ApiError::not_found(format!("no page {path}"))),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn error(e: &ApiError) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(e.body().to_string())));
    *resp.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::NOT_FOUND);
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_carries_the_token_and_unknown_paths_are_404() {
        let resp = serve(&Method::GET, "/", "tok123");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(INDEX.contains("{{CSRF_TOKEN}}"));
        assert!(!APP_JS.contains("http://") && !APP_JS.contains("https://"), "no external resources");
        assert_eq!(serve(&Method::GET, "/nope", "t").status(), StatusCode::NOT_FOUND);
        assert_eq!(serve(&Method::POST, "/", "t").status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
