//! The REST API under `/api/v1/` (documented in `docs/api/openapi.yaml`). Requests reach this module only
//! after authentication and, for state-changing methods, the CSRF check; handlers run on a blocking thread
//! and may read the repository directly.

use cairn_engine::Access;
use std::sync::Arc;

use cairn_engine::entries::TreeEntries;
use cairn_engine::policy::parse_source;
use cairn_engine::snapshot::Source;
use cairn_engine::tree::NodeKind;
use serde::Deserialize;
use serde_json::{json, Value};

use super::app::App;
use super::http::{query_pairs, ApiError, Reply};
use super::jobs::{self, absolute_target, RestoreRequest};
use super::tasks::StartError;

/// A request as the router sees it.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path after `/api/v1/`.
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

/// Routes one request.
pub fn handle(app: &Arc<App>, req: &Request<'_>) -> Result<Reply, ApiError> {
    let parts: Vec<&str> = req.path.split('/').filter(|p| !p.is_empty()).collect();
    let query = query_pairs(req.query);
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    match (req.method, parts.as_slice()) {
        ("GET", ["session"]) => Reply::ok(json!({"username": app.auth.username(), "csrfToken": app.auth.csrf_token()})),
        ("GET", ["repo", "status"]) => repo_status(app),
        ("GET", ["sources"]) => Reply::ok(json!({"sources": app.sources()?})),
        ("POST", ["sources", "snapshot"]) => snapshot_now(app, req.body),
        ("GET", ["snapshots"]) => list_snapshots(app, param("source")),
        ("GET", ["snapshots", id]) => Reply::ok(jobs::snapshot_json(&app.snapshot(id)?)),
        ("GET", ["snapshots", id, "browse"]) => {
            let number = |name: &str, default: usize| -> Result<usize, ApiError> {
                param(name).map_or(Ok(default), |v| {
                    v.parse().map_err(|_| ApiError::bad_request(format!("{name} must be a whole number, not {v:?}")))
                })
            };
            let page = (number("offset", 0)?, number("limit", BROWSE_PAGE)?.clamp(1, BROWSE_PAGE_MAX));
            browse(app, id, param("path").unwrap_or(""), page)
        }
        ("POST", ["restore"]) => restore(app, req.body),
        ("GET", ["policies"]) => {
            let rows: Vec<Value> = app
                .repo
                .policies()?
                .into_iter()
                .map(|(s, p)| json!({"key": s.to_string(), "source": s, "policy": p}))
                .collect();
            Reply::ok(json!({"policies": rows}))
        }
        ("GET", ["maintenance"]) => maintenance_status(app),
        ("POST", ["maintenance", "run"]) => {
            let task = app.start_maintenance(false).map_err(start_error)?;
            Reply::accepted(json!({"task": task.to_json(false)}))
        }
        ("GET", ["tasks"]) => {
            let tasks: Vec<Value> = app.tasks.list().iter().rev().map(|t| t.to_json(false)).collect();
            Reply::ok(json!({"tasks": tasks}))
        }
        ("GET", ["tasks", id]) => Reply::ok(task(app, id)?.to_json(false)),
        ("GET", ["tasks", id, "logs"]) => Reply::ok(json!({"logs": task(app, id)?.logs()})),
        ("POST", ["tasks", id, "cancel"]) => {
            let task = task(app, id)?;
            task.cancel();
            Reply::ok(task.to_json(false))
        }
        (
            _,
            ["session"]
            | ["repo", "status"]
            | ["sources"]
            | ["sources", "snapshot"]
            | ["snapshots"]
            | ["snapshots", _]
            | ["snapshots", _, "browse"]
            | ["restore"]
            | ["policies"]
            | ["maintenance"]
            | ["maintenance", "run"]
            | ["tasks"]
            | ["tasks", _]
            | ["tasks", _, "logs"]
            | ["tasks", _, "cancel"],
        ) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::not_found(format!("no endpoint /api/v1/{}", req.path))),
    }
}

fn start_error(e: StartError) -> ApiError {
    match e {
        StartError::ShuttingDown => ApiError::unavailable(e.to_string()),
        _ => ApiError::conflict(e.to_string()),
    }
}

fn task(app: &App, id: &str) -> Result<Arc<super::tasks::Task>, ApiError> {
    let id: u64 = id.parse().map_err(|_| ApiError::bad_request(format!("{id:?} is not a task id")))?;
    app.tasks.get(id).ok_or_else(|| ApiError::not_found(format!("task {id}")))
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn repo_status(app: &App) -> Result<Reply, ApiError> {
    let format = app.repo.format();
    let summary = app.repo.storage_summary()?;
    let blobs: Value =
        summary.iter().map(|(k, (n, bytes))| (k.to_string(), json!({"count": n, "bytes": bytes}))).collect();
    Reply::ok(json!({
        "connected": true,
        "location": app.location,
        "user": app.identity.user,
        "host": app.identity.host,
        "snapshots": app.repo.list_snapshots()?.len(),
        "indexEntries": app.repo.index().len(),
        "compressionLevel": format.compression_level,
        "packSize": format.pack_size,
        "blobs": blobs,
    }))
}

#[derive(Deserialize)]
struct SnapshotNow {
    path: String,
}

fn snapshot_now(app: &Arc<App>, body: &[u8]) -> Result<Reply, ApiError> {
    let req: SnapshotNow = parse_body(body)?;
    let path = std::fs::canonicalize(&req.path).map_err(|e| ApiError::bad_request(format!("{}: {e}", req.path)))?;
    if !path.is_dir() {
        return Err(ApiError::bad_request(format!("{} is not a folder", path.display())));
    }
    let path = path.to_str().ok_or_else(|| ApiError::bad_request("the path is not valid UTF-8"))?;
    let task = app.start_snapshot(app.local_source(path), false).map_err(start_error)?;
    Reply::accepted(json!({"task": task.to_json(false)}))
}

fn list_snapshots(app: &App, source: Option<&str>) -> Result<Reply, ApiError> {
    let filter: Option<Source> = match source {
        None | Some("") => None,
        Some(key) => Some(parse_source(key).ok_or_else(|| ApiError::bad_request(format!("bad source {key:?}")))?),
    };
    let snaps: Vec<Value> = app
        .repo
        .list_snapshots()?
        .iter()
        .rev()
        .filter(|s| filter.as_ref().is_none_or(|f| &s.source == f))
        .map(jobs::snapshot_json)
        .collect();
    Reply::ok(json!({"snapshots": snaps}))
}

/// Entries a browse reply carries unless the client asks for fewer, and the most it may ask for: a folder of
/// a million entries is listed a page at a time, never held whole.
const BROWSE_PAGE: usize = 1000;
const BROWSE_PAGE_MAX: usize = 10_000;

/// Up to `limit` entries of a folder from `offset` on (name order), reading the folder's tree a page at a
/// time. `next` is the offset of the following page, or null after the last entry.
fn browse(app: &App, id: &str, path: &str, (offset, limit): (usize, usize)) -> Result<Reply, ApiError> {
    let snap = app.snapshot(id)?;
    let resolved = app.repo.resolve_path(&snap.root, path)?;
    let tree = resolved.tree.ok_or_else(|| ApiError::bad_request(format!("{path} is not a folder")))?;
    let mut listing = TreeEntries::open(&*app.repo, &tree)?.skip(offset);
    let mut entries = Vec::new();
    for node in listing.by_ref().take(limit) {
        let n = node?;
        let (kind, extra) = match &n.kind {
            NodeKind::Dir { .. } => ("dir", Value::Null),
            NodeKind::File { .. } => ("file", Value::Null),
            NodeKind::Symlink { target } => ("symlink", String::from_utf8_lossy(target).into_owned().into()),
            NodeKind::Special { .. } => ("special", Value::Null),
        };
        entries.push(json!({
            "name": String::from_utf8_lossy(&n.name),
            "type": kind,
            "size": n.size,
            "mode": n.mode & 0o7777,
            "mtime": chrono::DateTime::from_timestamp(n.mtime_ns.div_euclid(1_000_000_000), 0).map(|t| t.to_rfc3339()),
            "target": extra,
        }));
    }
    let next = listing.next().transpose()?.map(|_| offset + entries.len());
    Reply::ok(
        json!({"snapshot": snap.id, "path": path.trim_matches('/'), "offset": offset, "next": next, "entries": entries}),
    )
}

#[derive(Deserialize)]
struct RestoreBody {
    snapshot: String,
    #[serde(default)]
    path: String,
    target: String,
    #[serde(default)]
    overwrite: bool,
}

fn restore(app: &Arc<App>, body: &[u8]) -> Result<Reply, ApiError> {
    let req: RestoreBody = parse_body(body)?;
    let snapshot = app.snapshot(&req.snapshot)?;
    let target = absolute_target(&req.target)?;
    // Fail fast on a path that is not in the snapshot.
    app.repo.resolve_path(&snapshot.root, &req.path)?;
    let task = app
        .start_restore(RestoreRequest { snapshot, path: req.path, target, overwrite: req.overwrite })
        .map_err(start_error)?;
    Reply::accepted(json!({"task": task.to_json(false)}))
}

fn maintenance_status(app: &App) -> Result<Reply, ApiError> {
    let schedule = app.schedule();
    let runs: Vec<Value> = app
        .tasks
        .list()
        .iter()
        .rev()
        .filter(|t| t.kind == super::tasks::TaskKind::Maintenance)
        .map(|t| t.to_json(false))
        .collect();
    Reply::ok(json!({
        "intervalSeconds": app.maintenance_interval,
        "lastRun": schedule.last_maintenance.map(|t| t.to_rfc3339()),
        "nextRun": schedule.next_maintenance.map(|t| t.to_rfc3339()),
        "running": app.tasks.maintenance_busy(),
        "runs": runs,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use cairn_engine::format::CreateOptions;
    use cairn_engine::storage::MemoryStorage;
    use cairn_engine::Repository;

    use super::*;
    use crate::ui::app::{LocalIdentity, ScheduleState};
    use crate::ui::auth::Auth;
    use crate::ui::tasks::Tasks;

    fn app() -> Arc<App> {
        let repo = Repository::create(Arc::new(MemoryStorage::new()), b"pw", &CreateOptions::default()).unwrap();
        Arc::new(App {
            repo: Arc::new(repo),
            auth: Auth::new("cairn", "pw", None, true).unwrap(),
            tasks: Arc::new(Tasks::new(None)),
            identity: LocalIdentity { user: "u".into(), host: "h".into() },
            location: "memory".into(),
            maintenance_interval: None,
            schedule: Mutex::new(ScheduleState::default()),
            index_guard: std::sync::RwLock::new(()),
        })
    }

    fn call(app: &Arc<App>, method: &str, path: &str, query: &str, body: &str) -> Result<Reply, ApiError> {
        handle(app, &Request { method, path, query, body: body.as_bytes() })
    }

    #[test]
    fn routes_methods_and_errors() {
        let app = app();
        assert_eq!(call(&app, "GET", "sources", "", "").unwrap().body["sources"], json!([]));
        assert_eq!(call(&app, "DELETE", "sources", "", "").err().unwrap().status, 405);
        assert_eq!(call(&app, "GET", "no/such/thing", "", "").err().unwrap().code, "not_found");
        assert_eq!(call(&app, "GET", "tasks/abc", "", "").err().unwrap().code, "bad_request");
        assert_eq!(call(&app, "GET", "snapshots", "source=nonsense", "").err().unwrap().code, "bad_request");
        assert_eq!(call(&app, "GET", "snapshots/zz", "", "").err().unwrap().code, "bad_request");
        assert_eq!(call(&app, "GET", "snapshots/abcd/browse", "", "").err().unwrap().code, "not_found");
        assert_eq!(call(&app, "POST", "sources/snapshot", "", "{").err().unwrap().code, "bad_request");
        let missing = call(&app, "POST", "sources/snapshot", "", r#"{"path": "/no/such/folder"}"#);
        assert_eq!(missing.err().unwrap().code, "bad_request");
        let session = call(&app, "GET", "session", "", "").unwrap();
        assert_eq!(session.body["csrfToken"], app.auth.csrf_token());
    }

    #[test]
    fn snapshot_then_browse_through_the_api() {
        let app = app();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/file.txt"), b"hello").unwrap();
        std::fs::write(dir.path().join("top.txt"), b"x").unwrap();
        let body = json!({"path": dir.path()}).to_string();
        let started = call(&app, "POST", "sources/snapshot", "", &body).unwrap();
        assert_eq!(started.status, 202);
        assert!(app.tasks.wait_idle(Duration::from_secs(30)));
        let id = started.body["task"]["id"].as_u64().unwrap();
        let task = call(&app, "GET", &format!("tasks/{id}"), "", "").unwrap().body;
        assert_eq!(task["status"], "success", "{task}");
        let snap = task["result"]["snapshot"]["id"].as_str().unwrap().to_string();
        let listing = call(&app, "GET", &format!("snapshots/{snap}/browse"), "path=sub", "").unwrap().body;
        assert_eq!(listing["entries"][0]["name"], "file.txt");
        assert_eq!(listing["entries"][0]["size"], 5);
        assert_eq!(listing["next"], Value::Null);
        // Pages: one entry at a time, `next` pointing at the following one until the last.
        let browse = |query: &str| call(&app, "GET", &format!("snapshots/{snap}/browse"), query, "");
        let first = browse("limit=1").unwrap().body;
        assert_eq!((first["entries"].as_array().unwrap().len(), first["next"].as_u64()), (1, Some(1)), "{first}");
        assert_eq!(first["entries"][0]["name"], "sub");
        let second = browse("limit=1&offset=1").unwrap().body;
        assert_eq!(second["entries"][0]["name"], "top.txt", "{second}");
        assert_eq!(second["next"], Value::Null);
        assert_eq!(browse("offset=2").unwrap().body["entries"].as_array().unwrap().len(), 0);
        assert_eq!(browse("offset=x").err().unwrap().code, "bad_request");
        let sources = call(&app, "GET", "sources", "", "").unwrap().body;
        assert_eq!(sources["sources"][0]["snapshots"], 1);
        assert_eq!(sources["sources"][0]["lastSnapshot"]["id"], snap.as_str());
        let not_dir = call(&app, "GET", &format!("snapshots/{snap}/browse"), "path=sub/file.txt", "");
        assert_eq!(not_dir.err().unwrap().code, "bad_request");
    }
}
