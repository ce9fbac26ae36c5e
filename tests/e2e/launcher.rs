//! `cairn ui`, the desktop launcher, against the real server: extra flags reach the child, the credentials
//! a second invocation prints log in, the log holds the child's output but not its password, SIGKILL of the
//! launcher ends the child, `--insecure` needs a confirmation, and `--unix-socket` serves the API with no
//! TCP port of the server's own (checked with `ss -ltnp` and in `/proc/net/tcp*`).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::https::Client;
use crate::support::{stderr, Env, PASSWORD};

/// A command with the env's config and a private `$XDG_RUNTIME_DIR`.
fn cairn(env: &Env) -> Command {
    let mut cmd = env.cmd();
    cmd.env("XDG_RUNTIME_DIR", env.path("run")).env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    cmd
}

/// A running `cairn ui --no-browser ...`, ready (it printed its last line).
struct Launcher {
    child: Child,
    /// What it printed on stdout until ready.
    lines: Vec<String>,
    /// Lines it prints later.
    rest: mpsc::Receiver<String>,
    log: PathBuf,
    server_pid: u32,
}

impl Launcher {
    fn start(env: &Env, args: &[&str]) -> Self {
        let mut child = cairn(env)
            .args(["ui", "--no-browser"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cairn ui");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut lines = Vec::new();
        while !lines.last().is_some_and(|l: &String| l.ends_with("Press Ctrl-C to stop.")) {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => lines.push(line),
                Err(_) => {
                    let _ = child.kill();
                    let mut err = String::new();
                    let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                    panic!("the launcher printed only {lines:?}; stderr: {err}");
                }
            }
        }
        let log = lines
            .iter()
            .find_map(|l| {
                l.split_once("Server log: ").map(|(_, rest)| rest.trim_end_matches(". Press Ctrl-C to stop."))
            })
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("no log path in {lines:?}"));
        let server_pid = children_of(child.id()).into_iter().next().expect("the launcher's server process");
        Launcher { child, lines, rest: rx, log, server_pid }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal`, waits for the launcher to exit, and returns its status, later stdout and stderr.
    fn signal(&mut self, signal: &str) -> (ExitStatus, String, String) {
        let status = Command::new("kill").args([signal, &self.pid().to_string()]).status().expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "the launcher did not exit after {signal}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout: Vec<String> = self.rest.iter().collect();
        let mut err = String::new();
        let _ = self.child.stderr.take().map(|mut e| e.read_to_string(&mut err));
        (status, stdout.join("\n"), err)
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if alive(self.server_pid) {
            let _ = Command::new("kill").args(["-9", &self.server_pid.to_string()]).status();
        }
    }
}

/// Processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").map_while(Result::ok) {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            found.push(child);
        }
    }
    found
}

/// Whether a process exists and has not exited (a zombie waiting for its reaper has exited).
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

fn cmdline(pid: u32) -> Vec<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// `cairn ui --show-credentials`, as `KEY: value` pairs.
fn show_credentials(env: &Env) -> BTreeMap<String, String> {
    let out = cairn(env).args(["ui", "--show-credentials"]).output().expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn addr_of(url: &str) -> SocketAddr {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).expect("a URL");
    rest.trim_end_matches('/').parse().expect("IP:PORT")
}

#[test]
fn launcher_passes_flags_to_its_server_shows_credentials_and_logs_without_the_password() {
    let env = Env::new();
    env.create_repo();
    let mut launcher = Launcher::start(&env, &["--", "--log-level", "debug", "--server-username", "me"]);

    // The child is the server, with the launcher's flags, then the extra ones; no secret on its command line.
    let args = cmdline(launcher.server_pid);
    let joined = args.join(" ");
    for expected in [
        "server start --ui --tls-generate-cert --tls-print-server-cert --random-password --shutdown-on-stdin",
        "--address=127.0.0.1:0 --config-file",
        "--log-level debug --server-username me",
    ] {
        assert!(joined.contains(expected), "{expected:?} not in {joined}");
    }

    // A second invocation prints credentials that log in, over TLS pinned to the printed fingerprint.
    let creds = show_credentials(&env);
    let (url, password, fingerprint) = (&creds["URL"], &creds["PASSWORD"], &creds["CERT SHA256"]);
    assert_eq!(creds["USER"], "me");
    assert!(launcher.lines[0].contains(url.as_str()), "{:?}", launcher.lines);
    assert!(!joined.contains(password.as_str()) && !joined.contains(PASSWORD), "secrets on the command line");
    let client = Client::pinned(addr_of(url), fingerprint);
    let status = client.request("GET", "/api/v1/repo/status", &[("Authorization", &basic("me", password))], None);
    assert_eq!(status.status, 200, "{}", String::from_utf8_lossy(&status.body));
    assert_eq!(status.header("cache-control"), Some("no-store"));
    assert!(status.header("content-security-policy").is_some_and(|c| c.contains("frame-ancestors 'none'")));
    assert_eq!(client.request("GET", "/api/v1/repo/status", &[("Authorization", &basic("me", "x"))], None).status, 401);
    let cert = PathBuf::from(&creds["CERT FILE"]);
    assert!(fs::read_to_string(&cert).unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    // curl checks the server against the certificate file (and refuses it without).
    if crate::support::tool_available("curl", "--version") {
        let curl = |extra: &[&str]| {
            Command::new("curl")
                .args(["-sS", "--fail", "-u", &format!("me:{password}")])
                .args(extra)
                .arg(format!("{url}/api/v1/repo/status"))
                .output()
                .expect("curl")
        };
        let out = curl(&["--cacert", cert.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("\"snapshots\""));
        assert!(!curl(&[]).status.success(), "curl trusted a self-signed certificate without --cacert");
    }

    // Not a terminal: the launcher's own output does not show the password, and stays short.
    let printed = launcher.lines.join("\n");
    assert!(!printed.contains(password.as_str()), "{printed}");
    assert!(printed.contains("--show-credentials"), "{printed}");
    assert!(launcher.lines.len() <= 5, "{printed}");

    // The credentials file is private; the log has the server's debug output but never its password.
    let session = fs::read_dir(env.path("run/cairn"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a session file");
    assert_eq!(mode(&session), 0o600);
    assert_eq!(mode(&env.path("run/cairn")), 0o700);
    assert_eq!(mode(&launcher.log), 0o600);
    let log = fs::read_to_string(&launcher.log).unwrap();
    assert!(log.contains("DEBUG") && log.contains("accepted a connection"), "--log-level debug reached it: {log}");
    assert!(log.contains(fingerprint.as_str()));
    assert!(!log.contains(password.as_str()), "the password is not logged");
    assert!(addr_of(url).ip().is_loopback(), "{url}");
    // The TLS key stays in the server's memory: no file the launcher or server wrote holds it.
    assert_eq!(files_containing(env.dir.path(), "PRIVATE KEY"), Vec::<PathBuf>::new());
    // Other local users see the server's command line (which holds no secret), not its environment (which
    // holds the repository password).
    let environ = PathBuf::from(format!("/proc/{}/environ", launcher.server_pid));
    assert!(fs::read_to_string(&environ).unwrap().contains(PASSWORD), "the server got it in its environment");
    if let Some(cmdline_readable) = other_user_reads(Path::new(&format!("/proc/{}/cmdline", launcher.server_pid))) {
        assert!(cmdline_readable, "the check can read what is readable");
        assert_eq!(other_user_reads(&environ), Some(false), "uid 65534 read the server's environment");
        assert_eq!(other_user_reads(&session), Some(false), "uid 65534 read the credentials file");
    }

    // Ctrl-C: the server stops cleanly, the credentials are gone.
    let (status, out, err) = launcher.signal("-INT");
    assert!(status.success(), "{err}");
    assert!(out.contains("Interrupted: the server stopped (exit 0)"), "{out}");
    assert!(!alive(launcher.server_pid));
    assert!(!session.exists() && !cert.exists());
    let after = cairn(&env).args(["ui", "--show-credentials"]).output().unwrap();
    assert_eq!(after.status.code(), Some(1));
    assert!(stderr(&after).contains("no `cairn ui` is running"), "{}", stderr(&after));
    assert!(fs::read_to_string(&launcher.log).unwrap().contains("Standard input closed: shutting down."));
}

#[test]
fn launcher_killed_with_sigkill_leaves_no_server_behind() {
    let env = Env::new();
    env.create_repo();
    let mut launcher = Launcher::start(&env, &[]);
    let server = launcher.server_pid;
    assert!(alive(server));
    assert!(cmdline(server).contains(&"--shutdown-on-stdin".to_string()));
    launcher.child.kill().expect("SIGKILL");
    launcher.child.wait().expect("reap the launcher");
    let killed = Instant::now();
    while alive(server) {
        assert!(killed.elapsed() < Duration::from_secs(2), "server {server} still runs 2 s after the launcher died");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The credentials file it could not remove is recognised as stale.
    let after = cairn(&env).args(["ui", "--show-credentials"]).output().unwrap();
    assert_eq!(after.status.code(), Some(1), "{}", String::from_utf8_lossy(&after.stdout));
    assert!(stderr(&after).contains("no `cairn ui` is running"));
}

/// SIGHUP (the terminal closed) and SIGTERM stop the server and remove the credentials, as Ctrl-C does.
#[test]
fn launcher_stops_its_server_on_sighup_and_sigterm() {
    for (signal, said) in [("-HUP", "Terminal closed"), ("-TERM", "Terminated")] {
        let env = Env::new();
        env.create_repo();
        let mut launcher = Launcher::start(&env, &[]);
        let server = launcher.server_pid;
        assert!(alive(server));
        let (status, out, err) = launcher.signal(signal);
        assert!(status.success(), "{signal}: {err}");
        assert!(out.contains(&format!("{said}: the server stopped (exit 0)")), "{signal}: {out}");
        assert!(!alive(server), "{signal}: server {server} still runs");
        let after = cairn(&env).args(["ui", "--show-credentials"]).output().unwrap();
        assert_eq!(after.status.code(), Some(1), "{signal}: credentials left behind");
    }
}

#[test]
fn launcher_refuses_insecure_and_reserved_flags_unless_confirmed() {
    let env = Env::new();
    env.create_repo();
    let refused = cairn(&env).args(["ui", "--no-browser", "--", "--insecure"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("--i-understand-insecure"), "{}", stderr(&refused));
    let reserved = cairn(&env).args(["ui", "--no-browser", "--", "--address=0.0.0.0:8080"]).output().unwrap();
    assert_eq!(reserved.status.code(), Some(1));
    assert!(stderr(&reserved).contains("not allowed"), "{}", stderr(&reserved));

    // Confirmed: plain HTTP, said loudly.
    let mut launcher = Launcher::start(&env, &["--i-understand-insecure", "--", "--insecure"]);
    assert!(launcher.lines.iter().any(|l| l.starts_with("WARNING: plain HTTP")), "{:?}", launcher.lines);
    let creds = show_credentials(&env);
    assert!(creds["URL"].starts_with("http://"), "{creds:?}");
    let client = Client::plain(addr_of(&creds["URL"]));
    let resp =
        client.request("GET", "/api/v1/repo/status", &[("Authorization", &basic("cairn", &creds["PASSWORD"]))], None);
    assert_eq!(resp.status, 200);
    let (status, _, err) = launcher.signal("-TERM");
    assert!(status.success(), "{err}");
}

/// Inodes of the TCP sockets in LISTEN state (state 0A in `/proc/net/tcp` and `tcp6`).
fn listening_inodes() -> Vec<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) == Some(&"0A") {
                inodes.extend(fields.get(9).map(|s| s.to_string()));
            }
        }
    }
    inodes
}

/// The socket inodes a process holds open.
fn socket_inodes(pid: u32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect()
}

/// Inodes of every TCP and UDP socket, in any state, IPv4 and IPv6.
fn inet_inodes() -> Vec<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"] {
        let text = fs::read_to_string(table).unwrap_or_default();
        inodes.extend(text.lines().skip(1).filter_map(|l| l.split_whitespace().nth(9).map(str::to_string)));
    }
    inodes
}

/// Whether `pid` holds a listening TCP socket, from `/proc`.
pub fn listens_on_tcp(pid: u32) -> bool {
    let listening = listening_inodes();
    socket_inodes(pid).iter().any(|inode| listening.contains(inode))
}

/// `ss -ltnp`: the listening TCP sockets and their processes.
fn ss_listening() -> String {
    let out = Command::new("ss").args(["-ltnpH"]).output().expect("ss (iproute2; .ci/run installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const CONNECT: &str = "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print('connected')";

/// Tries to connect to the socket as uid 65534 (with setpriv and the system's python3), when we are root.
fn other_user_connects(socket: &Path) -> Option<Output> {
    let root = fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    if !root {
        return None;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "/usr/bin/python3", "-c", CONNECT])
        .arg(socket)
        .output()
        .expect("setpriv and /usr/bin/python3");
    Some(out)
}

/// Whether uid 65534 can read `path` (`None` when we are not root and cannot switch users).
fn other_user_reads(path: &Path) -> Option<bool> {
    let root = fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    if !root {
        return None;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "cat"])
        .arg(path)
        .output()
        .expect("setpriv");
    Some(out.status.success())
}

/// Files under `dir` (recursively) whose text contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if fs::read(&path).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle)) {
            found.push(path);
        }
    }
    found
}

fn assert_refused(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "uid 65534 connected ({what})");
    assert!(err.contains("PermissionError"), "{what}: {err}");
}

#[test]
fn launcher_unix_socket_serves_the_api_and_the_server_opens_no_tcp_port() {
    let env = Env::new();
    env.create_repo();
    // With a server user, a UI server on TCP would also run the QUIC repository server; on a socket it must not.
    env.ok(&["server", "user", "add", "someone@box", "--user-password", "pw"]);
    let mut launcher = Launcher::start(&env, &["--unix-socket"]);
    let server = launcher.server_pid;
    let socket = cmdline(server)
        .iter()
        .find_map(|a| a.strip_prefix("--address=unix:").map(PathBuf::from))
        .expect("the server was given a unix: address");
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(socket.parent().unwrap()), 0o700);

    // The API answers through the launcher's loopback port, over TLS pinned end to end to the server.
    let creds = show_credentials(&env);
    let proxy = addr_of(&creds["URL"]);
    assert!(proxy.ip().is_loopback());
    let client = Client::pinned(proxy, &creds["CERT SHA256"]);
    let status =
        client.request("GET", "/api/v1/repo/status", &[("Authorization", &basic("cairn", &creds["PASSWORD"]))], None);
    assert_eq!(status.status, 200, "{}", String::from_utf8_lossy(&status.body));
    assert_eq!(status.json()["snapshots"], 0);
    assert_eq!(
        client.request("GET", "/api/v1/repo/status", &[], None).status,
        401,
        "the proxy's port needs the password"
    );

    // The server listens on no TCP port; the launcher's proxy does (which shows the checks see ports).
    assert!(!listens_on_tcp(server), "the server holds a listening TCP socket");
    let inet = inet_inodes();
    let network: Vec<_> = socket_inodes(server).into_iter().filter(|i| inet.contains(i)).collect();
    assert!(network.is_empty(), "the server holds TCP or UDP sockets: {network:?}");
    assert!(listens_on_tcp(launcher.pid()), "the proxy's port is visible in /proc/net/tcp");
    let ss = ss_listening();
    let port = format!(":{} ", proxy.port());
    let proxy_line = ss.lines().find(|l| l.contains(&port)).unwrap_or_else(|| panic!("no {port} in ss -ltnp:\n{ss}"));
    assert!(proxy_line.contains(&format!("pid={},", launcher.pid())), "{proxy_line}");
    assert!(!ss.contains(&format!("pid={server},")), "ss -ltnp shows a port of the server:\n{ss}");

    // Another local user cannot reach the socket: the directory keeps them out, and so would the socket's
    // own mode if the directory were opened. We (the owner) connect with the same command.
    for open in [env.dir.path().to_path_buf(), env.path("run")] {
        fs::set_permissions(open, fs::Permissions::from_mode(0o755)).unwrap();
    }
    if let Some(out) = other_user_connects(&socket) {
        assert_refused(&out, "private directory");
        let dir = socket.parent().unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        let out = other_user_connects(&socket).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
        assert_refused(&out, "socket mode 0600");
        let own = Command::new("/usr/bin/python3").args(["-c", CONNECT]).arg(&socket).output().expect("python3");
        assert!(own.status.success(), "{}", String::from_utf8_lossy(&own.stderr));
    }

    // When the launcher stops, the proxy's port and the socket are gone.
    let (status, _, err) = launcher.signal("-TERM");
    assert!(status.success(), "{err}");
    assert!(!alive(server));
    assert!(TcpStream::connect(proxy).is_err(), "the loopback port outlived the launcher");
    assert!(!socket.exists(), "the socket file is removed");
}
