//! The UI server started as a desktop launcher starts it: the four stderr lines, authentication (Basic,
//! session cookie, tampered cookie, CSRF), a snapshot and a restore through the API with live progress,
//! policies that fire on schedule with retention, and a clean exit when standard input closes.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};

use crate::https::{Client, Response};
use crate::support::{stderr, Env};
use crate::tree_gen::{assert_same_tree, build_tree, noise, write, TreeSpec};

/// A running `cairn server start --ui`.
pub struct UiProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    pub password: String,
    pub fingerprint: String,
    pub url: String,
    pub addr: SocketAddr,
    /// Everything printed on stderr after the four lines.
    pub rest: Arc<Mutex<Vec<String>>>,
}

impl UiProcess {
    /// Starts the server with the launcher's flags plus `extra`, and reads the four lines.
    pub fn start(env: &Env, extra: &[&str]) -> Self {
        let mut cmd: Command = env.cmd();
        cmd.args([
            "server",
            "start",
            "--ui",
            "--tls-generate-cert",
            "--tls-print-server-cert",
            "--random-password",
            "--shutdown-on-stdin",
            "--address=localhost:0",
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start cairn server");
        let stdin = child.stdin.take();
        let err = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel::<String>();
        let rest = Arc::new(Mutex::new(Vec::new()));
        let rest2 = rest.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(err).lines();
            for _ in 0..4 {
                match lines.next() {
                    Some(Ok(line)) => {
                        let _ = tx.send(line);
                    }
                    _ => return,
                }
            }
            for line in lines.map_while(Result::ok) {
                rest2.lock().unwrap().push(line);
            }
        });
        let mut four = Vec::new();
        for _ in 0..4 {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => four.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("the server printed only {four:?}");
                }
            }
        }
        let value = |i: usize, key: &str| -> String {
            let prefix = format!("{key}: ");
            four[i].strip_prefix(&prefix).unwrap_or_else(|| panic!("line {i} is {:?}, expected {key}", four[i])).into()
        };
        let password = value(0, "SERVER PASSWORD");
        let fingerprint = value(1, "SERVER CERT SHA256");
        let cert_b64 = value(2, "SERVER CERTIFICATE");
        let url = value(3, "SERVER ADDRESS");
        for hex in [&password, &fingerprint] {
            assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "not 64 hex digits: {hex}");
        }
        let cert_pem = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(&cert_b64).unwrap()).unwrap();
        assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"), "{cert_pem}");
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("a PEM certificate");
        assert_eq!(cairn_transport::tls::fingerprint(&der), fingerprint, "the fingerprint is the printed cert's");
        let addr: SocketAddr = url.strip_prefix("https://").expect("https URL").parse().expect("IP:PORT");
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        UiProcess { child, stdin, password, fingerprint, url, addr, rest }
    }

    pub fn client(&self) -> Client {
        Client::pinned(self.addr, &self.fingerprint)
    }

    pub fn basic(&self) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("cairn:{}", self.password)))
    }

    /// Closes standard input and returns how long the process took to exit, and its status.
    pub fn close_stdin(&mut self) -> (Duration, std::process::ExitStatus) {
        let start = Instant::now();
        drop(self.stdin.take());
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (start.elapsed(), status);
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("the server did not exit after stdin closed; stderr: {:?}", self.rest.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for UiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An authenticated API session: a cookie from a Basic login, and the CSRF token.
pub struct Session {
    pub client: Client,
    pub cookie: String,
    pub csrf: String,
}

impl Session {
    pub fn login(server: &UiProcess) -> Self {
        let client = server.client();
        let basic = server.basic();
        let resp = client.request("GET", "/api/v1/session", &[("Authorization", &basic)], None);
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
        let set = resp.header("set-cookie").expect("a session cookie").to_string();
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Max-Age="] {
            assert!(set.contains(attr), "cookie lacks {attr}: {set}");
        }
        let cookie = set.split(';').next().unwrap().to_string();
        let csrf = resp.json()["csrfToken"].as_str().expect("csrf token").to_string();
        Session { client, cookie, csrf }
    }

    pub fn get(&self, path: &str) -> Response {
        self.client.request("GET", path, &[("Cookie", &self.cookie)], None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Response {
        self.client.request("POST", path, &[("Cookie", &self.cookie), ("X-Cairn-Csrf-Token", &self.csrf)], Some(body))
    }

    /// GET that must succeed, as JSON.
    pub fn json(&self, path: &str) -> Value {
        let resp = self.get(path);
        assert_eq!(resp.status, 200, "GET {path}: {}", String::from_utf8_lossy(&resp.body));
        resp.json()
    }

    /// Polls a task until it is no longer running; returns its final state and every progress seen.
    pub fn wait_task(&self, id: u64, timeout: Duration) -> (Value, Vec<Value>) {
        let start = Instant::now();
        let mut seen = Vec::new();
        loop {
            let task = self.json(&format!("/api/v1/tasks/{id}"));
            if task["status"] != "running" {
                return (task, seen);
            }
            seen.push(task["progress"].clone());
            assert!(start.elapsed() < timeout, "task {id} still running: {task}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn error_code(resp: &Response) -> String {
    resp.json()["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {:?}", resp.json())).to_string()
}

fn count_snapshots(env: &Env) -> usize {
    env.json(&["snapshot", "list", "--json"]).as_array().unwrap().len()
}

#[test]
fn launcher_start_auth_snapshot_restore_and_stdin_shutdown() {
    let env = Env::new();
    let src = env.path("src");
    build_tree(&src, &TreeSpec { small_files: 300, big_file_bytes: 24 << 20 });
    env.create_repo();
    let mut server = UiProcess::start(&env, &[]);
    let client = server.client();

    // No credentials, wrong credentials, unknown endpoints: all the same 401, before any routing.
    for path in ["/api/v1/repo/status", "/api/v1/no-such-endpoint", "/", "/app.js"] {
        let resp = client.request("GET", path, &[], None);
        assert_eq!(resp.status, 401, "{path}");
        assert_eq!(error_code(&resp), "unauthorized");
        assert!(resp.header("www-authenticate").unwrap_or("").starts_with("Basic"), "{path}");
    }
    let wrong = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("cairn:not-the-password"));
    assert_eq!(client.request("GET", "/api/v1/repo/status", &[("Authorization", &wrong)], None).status, 401);
    let post = client.request("POST", "/api/v1/sources/snapshot", &[], Some(&json!({"path": "/"})));
    assert_eq!(post.status, 401, "unauthenticated POST");

    // Login; the cookie alone then works; a tampered cookie is refused even alongside the password.
    let session = Session::login(&server);
    assert_eq!(session.json("/api/v1/repo/status")["snapshots"], 0);
    let (value, tag) = session.cookie.rsplit_once('.').unwrap();
    let first = if tag.starts_with('A') { 'B' } else { 'A' };
    let flipped: String = std::iter::once(first).chain(tag.chars().skip(1)).collect();
    let tampered = format!("{value}.{flipped}");
    let resp = client.request("GET", "/api/v1/repo/status", &[("Cookie", &tampered)], None);
    assert_eq!(resp.status, 401);
    let basic = server.basic();
    let both = [("Cookie", tampered.as_str()), ("Authorization", basic.as_str())];
    assert_eq!(client.request("GET", "/api/v1/repo/status", &both, None).status, 401);
    // Known endpoint, wrong method; unknown endpoint once authenticated; a stable error shape.
    assert_eq!(error_code(&session.get("/api/v1/nope")), "not_found");
    assert_eq!(session.get("/api/v1/tasks/999999").status, 404);
    assert_eq!(error_code(&session.get("/api/v1/tasks/999999")), "not_found");

    // State-changing requests need the CSRF token.
    let body = json!({"path": src.to_str().unwrap()});
    let no_csrf = client.request("POST", "/api/v1/sources/snapshot", &[("Cookie", &session.cookie)], Some(&body));
    assert_eq!(no_csrf.status, 403);
    assert_eq!(error_code(&no_csrf), "csrf_token_required");
    let bad_csrf = client.request(
        "POST",
        "/api/v1/sources/snapshot",
        &[("Cookie", &session.cookie), ("X-Cairn-Csrf-Token", "0000")],
        Some(&body),
    );
    assert_eq!(bad_csrf.status, 403);
    assert_eq!(count_snapshots(&env), 0, "refused requests did nothing");

    // The page is served with the token in it.
    let page = session.get("/");
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains(&session.csrf));

    // Snapshot now, and watch its progress to completion.
    let started = session.post("/api/v1/sources/snapshot", &body);
    assert_eq!(started.status, 202, "{}", String::from_utf8_lossy(&started.body));
    let id = started.json()["task"]["id"].as_u64().unwrap();
    let (task, seen) = session.wait_task(id, Duration::from_secs(120));
    assert_eq!(task["status"], "success", "{task}");
    assert!(!seen.is_empty(), "progress was visible while running");
    for p in &seen {
        for field in ["bytesDone", "bytesTotal", "filesDone", "bytesPerSecond", "etaSeconds", "percent"] {
            assert!(p.get(field).is_some(), "progress lacks {field}: {p}");
        }
    }
    let done: Vec<u64> = seen.iter().map(|p| p["bytesDone"].as_u64().unwrap()).collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "bytesDone never goes back: {done:?}");
    assert_eq!(task["progress"]["bytesDone"], task["progress"]["bytesTotal"], "{task}");
    let snap_id = task["result"]["snapshot"]["id"].as_str().unwrap().to_string();
    assert_eq!(count_snapshots(&env), 1);

    // Sources, snapshots of the source, browsing.
    let sources = session.json("/api/v1/sources");
    let canonical = std::fs::canonicalize(&src).unwrap();
    let source = sources["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == canonical.to_str().unwrap())
        .unwrap_or_else(|| panic!("source missing: {sources}"))
        .clone();
    assert_eq!(source["lastSnapshot"]["id"], snap_id.as_str());
    let key = source["key"].as_str().unwrap();
    let snaps = session.json(&format!("/api/v1/snapshots?source={}", key.replace('@', "%40").replace('/', "%2F")));
    assert_eq!(snaps["snapshots"][0]["id"], snap_id.as_str());
    let root = session.json(&format!("/api/v1/snapshots/{snap_id}/browse"));
    let names: HashSet<&str> =
        root["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    for expected in ["big", "small", "names", "links", "modes", "empty"] {
        assert!(names.contains(expected), "{expected} not in {names:?}");
    }
    let big = session.json(&format!("/api/v1/snapshots/{}/browse?path=big", &snap_id[..10]));
    assert_eq!(big["entries"][0]["name"], "large.bin");
    assert_eq!(big["entries"][0]["size"], 24 << 20);
    assert_eq!(session.get(&format!("/api/v1/snapshots/{snap_id}/browse?path=missing")).status, 404);

    // Restore through the API: byte- and metadata-identical.
    let target = env.path("restored");
    let restore =
        session.post("/api/v1/restore", &json!({"snapshot": snap_id, "path": "", "target": target.to_str().unwrap()}));
    assert_eq!(restore.status, 202, "{}", String::from_utf8_lossy(&restore.body));
    let (task, _) = session.wait_task(restore.json()["task"]["id"].as_u64().unwrap(), Duration::from_secs(120));
    assert_eq!(task["status"], "success", "{task}");
    assert_same_tree(&src, &target);
    let relative = session.post("/api/v1/restore", &json!({"snapshot": snap_id, "target": "relative/dir"}));
    assert_eq!(error_code(&relative), "bad_request");

    // Tasks are listed with logs, and each run left a log file.
    let tasks = session.json("/api/v1/tasks");
    assert!(tasks["tasks"].as_array().unwrap().len() >= 2);
    let logs = session.json(&format!("/api/v1/tasks/{id}/logs"));
    assert!(
        logs["logs"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("created snapshot")),
        "{logs}"
    );
    let log_dir = env.path("xdg-cache/cairn/logs");
    let files = std::fs::read_dir(&log_dir).map(|d| d.count()).unwrap_or(0);
    assert!(files >= 2, "expected a log file per task in {}", log_dir.display());

    // Maintenance runs on demand.
    let run = session.post("/api/v1/maintenance/run", &json!({}));
    assert_eq!(run.status, 202);
    let (task, _) = session.wait_task(run.json()["task"]["id"].as_u64().unwrap(), Duration::from_secs(60));
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["result"]["snapshotsChecked"], 1);
    assert!(session.json("/api/v1/maintenance")["runs"].as_array().unwrap().len() == 1);

    // Cancel a large snapshot through the API: it records nothing.
    write(&src.join("big/second.bin"), &noise(99, 96 << 20));
    let started = session.post("/api/v1/sources/snapshot", &body);
    assert_eq!(started.status, 202);
    let id = started.json()["task"]["id"].as_u64().unwrap();
    let cancel = session.post(&format!("/api/v1/tasks/{id}/cancel"), &json!({}));
    assert_eq!(cancel.status, 200);
    let (task, _) = session.wait_task(id, Duration::from_secs(60));
    assert_eq!(task["status"], "cancelled", "{task}");
    assert_eq!(count_snapshots(&env), 1, "a cancelled snapshot is not recorded");

    // Start it again, close stdin while it runs: the process exits cleanly within 2 seconds.
    let started = session.post("/api/v1/sources/snapshot", &body);
    assert_eq!(started.status, 202);
    std::thread::sleep(Duration::from_millis(150));
    let (took, status) = server.close_stdin();
    assert!(status.success(), "exit status {status:?}; stderr: {:?}", server.rest.lock().unwrap());
    assert!(took < Duration::from_secs(2), "took {took:?} to exit");

    // The repository is consistent: the first snapshot (and a finished second one, if any) restore.
    let after = env.json(&["snapshot", "list", "--json"]);
    let after = after.as_array().unwrap();
    assert!(after.len() == 1 || after.len() == 2, "{after:?}");
    let out = env.path("after-shutdown");
    let first = env.ok(&["restore", &snap_id, out.to_str().unwrap()]);
    assert!(stderr(&first).contains("Restored"));
    assert_eq!(std::fs::read(out.join("big/large.bin")).unwrap().len(), 24 << 20);
    let again = env.snapshot(&src);
    assert_eq!(again["incomplete"], false, "a backup after the interrupted one works: {again}");
}

#[test]
fn scheduled_policy_fires_and_retention_removes_old_snapshots() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a.txt"), b"alpha");
    write(&src.join("sub/b.txt"), b"beta");
    env.create_repo();
    let manual: Vec<String> = (0..3).map(|_| env.snapshot(&src)["id"].as_str().unwrap().to_string()).collect();
    let set = env.ok(&["policy", "set", src.to_str().unwrap(), "--snapshot-interval", "3s", "--keep-latest", "2"]);
    assert!(stderr(&set).contains("snapshot every 3s; keep latest 2"), "{}", stderr(&set));
    let shown = env.json(&["policy", "show", src.to_str().unwrap(), "--json"]);
    assert_eq!(shown["policy"]["snapshotIntervalSeconds"], 3);
    assert_eq!(shown["policy"]["keep"]["latest"], 2);

    let mut server = UiProcess::start(&env, &["--maintenance-interval", "0"]);
    let session = Session::login(&server);
    let sources = session.json("/api/v1/sources");
    assert!(sources["sources"][0]["nextSnapshotTime"].is_string(), "{sources}");

    // Within a few seconds the scheduler takes a snapshot and applies retention.
    let start = Instant::now();
    let task = loop {
        let tasks = session.json("/api/v1/tasks");
        let done =
            tasks["tasks"].as_array().unwrap().iter().find(|t| t["scheduled"] == true && t["status"] != "running");
        if let Some(t) = done {
            break t.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no scheduled snapshot: {tasks}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(task["status"], "success", "{task}");
    let expired: Vec<&str> =
        task["result"]["expired"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(expired, vec![manual[0].as_str(), manual[1].as_str()], "the two oldest manual snapshots expire");
    let (_, status) = server.close_stdin();
    assert!(status.success());

    let list = env.json(&["snapshot", "list", "--json"]);
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert_eq!(ids[0], manual[2]);
    assert_eq!(list[1]["tags"]["type"], "scheduled");
    assert_eq!(ids[1], task["result"]["snapshot"]["id"].as_str().unwrap());
}

#[test]
fn insecure_plain_http_other_clients_snapshots_and_scheduled_maintenance() {
    let env = Env::new();
    env.create_repo();
    let no_password = env.run(&["server", "start", "--ui", "--tls-generate-cert", "--address=127.0.0.1:0"]);
    assert_eq!(no_password.status.code(), Some(1));
    assert!(stderr(&no_password).contains("--random-password"), "{}", stderr(&no_password));

    let mut child = env
        .cmd()
        .args(["server", "start", "--ui", "--insecure", "--server-password", "pw", "--shutdown-on-stdin"])
        .args(["--address=127.0.0.1:0", "--server-username", "me", "--maintenance-interval", "1s"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = lines.next().unwrap().unwrap();
    let url = address.strip_prefix("SERVER ADDRESS: http://").unwrap_or_else(|| panic!("{address}"));
    let warning = lines.next().unwrap().unwrap();
    assert!(warning.starts_with("WARNING: --insecure"), "{warning}");
    let client = Client::plain(url.parse().unwrap());
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("me:pw"));
    let resp = client.request("GET", "/api/v1/session", &[("Authorization", &basic)], None);
    assert_eq!(resp.status, 200);
    assert!(!resp.header("set-cookie").unwrap().contains("Secure"), "no Secure cookie over plain HTTP");
    assert_eq!(client.request("GET", "/api/v1/session", &[], None).status, 401);

    // A snapshot another client takes while the server runs can be browsed (the index is refreshed).
    let src = env.path("later");
    write(&src.join("late.txt"), b"late");
    let snap = env.snapshot(&src);
    let id = snap["id"].as_str().unwrap();
    let resp = client.request("GET", &format!("/api/v1/snapshots/{id}/browse"), &[("Authorization", &basic)], None);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.json()["entries"][0]["name"], "late.txt");

    // Quick maintenance runs on its own schedule.
    let start = Instant::now();
    loop {
        let resp = client.request("GET", "/api/v1/maintenance", &[("Authorization", &basic)], None);
        let status = resp.json();
        assert_eq!(status["intervalSeconds"], 1);
        let runs = status["runs"].as_array().unwrap();
        if runs.iter().any(|r| r["scheduled"] == true && r["status"] == "success") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no scheduled maintenance: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}
