//! The HTTPS listener, on TCP or a Unix socket: TLS (h2 and http/1.1 over rustls), then for every request
//! authentication first — before any routing, so an unauthenticated caller learns nothing, not even which
//! paths exist — then the CSRF check for state-changing API calls, then the API or the embedded page. On
//! shutdown it stops accepting, cancels running tasks and waits briefly for them to stop.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_rustls::TlsAcceptor;

use super::app::App;
use super::auth::{Verdict, CSRF_HEADER};
use super::http::ApiError;
use super::listen::{Listener, SocketFile};
use super::{api, assets, schedule, UiError};

/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;
/// How long shutdown waits for cancelled tasks.
pub const SHUTDOWN_WAIT: Duration = Duration::from_millis(1500);

/// A bound, not yet running, UI server.
pub struct UiServer {
    listener: Listener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Arc<App>,
}

/// A bound listener, handed to tokio.
enum AsyncListener {
    Tcp(tokio::net::TcpListener),
    Unix {
        listener: tokio::net::UnixListener,
        /// Removes the socket file when the listener is dropped.
        _socket_file: SocketFile,
    },
}

impl UiServer {
    pub(super) fn new(listener: Listener, tls: Option<Arc<rustls::ServerConfig>>, app: Arc<App>) -> Self {
        Self { listener, tls, app }
    }

    /// The TCP address actually bound (port 0 resolved); `None` on a Unix socket.
    pub fn tcp_addr(&self) -> Result<Option<SocketAddr>, UiError> {
        match &self.listener {
            Listener::Tcp(l) => l.local_addr().map(Some).map_err(UiError::Bind),
            Listener::Unix(..) => Ok(None),
        }
    }

    /// `https://IP:PORT`, or `https+unix:///path/of/socket` (`http` for either with `--insecure`).
    pub fn url(&self) -> Result<String, UiError> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        match &self.listener {
            Listener::Tcp(l) => Ok(format!("{scheme}://{}", l.local_addr().map_err(UiError::Bind)?)),
            Listener::Unix(_, file) => Ok(format!("{scheme}+unix://{}", file.0.display())),
        }
    }

    /// Serves until `shutdown` resolves, then cancels running tasks and waits up to [`SHUTDOWN_WAIT`] for
    /// them. Must run inside a tokio runtime. A Unix socket's file is removed when it returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), UiError> {
        let listener = match self.listener {
            Listener::Tcp(l) => {
                l.set_nonblocking(true).map_err(UiError::Bind)?;
                AsyncListener::Tcp(tokio::net::TcpListener::from_std(l).map_err(UiError::Bind)?)
            }
            Listener::Unix(l, file) => {
                l.set_nonblocking(true).map_err(UiError::Bind)?;
                let listener = tokio::net::UnixListener::from_std(l).map_err(UiError::Bind)?;
                AsyncListener::Unix { listener, _socket_file: file }
            }
        };
        let acceptor = self.tls.map(TlsAcceptor::from);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let scheduler = tokio::spawn(schedule::run(self.app.clone(), stop_rx));
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = accept(&listener) => accepted,
            };
            let (app, acceptor) = (self.app.clone(), acceptor.clone());
            match accepted {
                Ok(Accepted::Tcp(stream, peer)) => {
                    tokio::spawn(serve_connection(app, acceptor, stream, peer.to_string()));
                }
                Ok(Accepted::Unix(stream)) => {
                    tokio::spawn(serve_connection(app, acceptor, stream, "the Unix socket".to_string()));
                }
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let _ = scheduler.await;
        let tasks = self.app.tasks.clone();
        tasks.close();
        let idle = tokio::task::spawn_blocking(move || tasks.wait_idle(SHUTDOWN_WAIT)).await.unwrap_or(false);
        if !idle {
            tracing::warn!("some tasks were still stopping at shutdown");
        }
        Ok(())
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &AsyncListener) -> std::io::Result<Accepted> {
    match listener {
        AsyncListener::Tcp(l) => l.accept().await.map(|(s, peer)| Accepted::Tcp(s, peer)),
        AsyncListener::Unix { listener, .. } => listener.accept().await.map(|(s, _)| Accepted::Unix(s)),
    }
}

/// One connection: TLS (unless `--insecure`), then HTTP/1.1 or HTTP/2 until the client is done.
async fn serve_connection<S>(app: Arc<App>, acceptor: Option<TlsAcceptor>, stream: S, peer: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tracing::debug!("accepted a connection from {peer}");
    let service = hyper::service::service_fn(move |req| respond(app.clone(), req));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let result = match acceptor {
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
            Err(e) => {
                tracing::debug!("TLS handshake with {peer}: {e}");
                return;
            }
        },
        None => builder.serve_connection(TokioIo::new(stream), service).await,
    };
    if let Err(e) = result {
        tracing::debug!("connection from {peer}: {e}");
    }
}

type Reply = Response<Full<Bytes>>;

async fn respond(app: Arc<App>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let now = chrono::Utc::now().timestamp();
    // HTTP/2 may split cookies over several headers.
    let cookies: Vec<&str> = req.headers().get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).collect();
    let cookies = (!cookies.is_empty()).then(|| cookies.join("; "));
    let verdict =
        app.auth.check(req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()), cookies.as_deref(), now);
    if verdict == Verdict::Denied {
        let mut resp = error_response(&ApiError::unauthorized());
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Cairn\", charset=\"UTF-8\""));
        return Ok(secure(resp));
    }
    let set_cookie = (verdict == Verdict::Password).then(|| app.auth.issue_cookie(now));
    let mut resp = route(&app, req).await;
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(SET_COOKIE, cookie);
    }
    Ok(secure(resp))
}

async fn route(app: &Arc<App>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let Some(api_path) = path.strip_prefix("/api/v1/") else {
        if path.starts_with("/api/") {
            return error_response(&ApiError::not_found(format!("no endpoint {path}")));
        }
        return assets::serve(req.method(), &path, &app.auth.csrf_token());
    };
    let method = req.method().clone();
    if !matches!(method, Method::GET | Method::HEAD) {
        let token = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !app.auth.csrf_ok(token) {
            return error_response(&ApiError::csrf());
        }
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error_response(&ApiError::new(413, "body_too_large", e.to_string())),
    };
    let app = app.clone();
    let api_path = api_path.to_string();
    let method_name = if method == Method::HEAD { "GET".to_string() } else { method.as_str().to_string() };
    let result = tokio::task::spawn_blocking(move || {
        api::handle(&app, &api::Request { method: &method_name, path: &api_path, query: &query, body: &body })
    })
    .await;
    match result {
        Ok(Ok(reply)) => json_response(reply.status, &reply.body),
        Ok(Err(e)) => error_response(&e),
        Err(e) => error_response(&ApiError::new(500, "internal", format!("handler failed: {e}"))),
    }
}

fn json_response(status: u16, body: &serde_json::Value) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn error_response(e: &ApiError) -> Reply {
    json_response(e.status, &e.body())
}

/// Headers every answer carries: no caching, no sniffing, no framing, same-origin scripts only.
fn secure(mut resp: Reply) -> Reply {
    let h = resp.headers_mut();
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    );
    resp
}
