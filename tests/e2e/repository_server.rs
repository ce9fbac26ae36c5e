//! The QUIC repository server end to end: a real server process with a generated certificate, users in
//! the repository, clients that pin the certificate and never hold the repository password.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{count_files, file_sizes, num, stderr, text, Env};
use crate::tree_gen::{assert_same_tree, build_tree, noise, write, TreeSpec};

/// A running `cairn server start` and what it printed.
struct Server {
    child: Child,
    fingerprint: String,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(owner: &Env) -> Server {
    let (mut server, addresses) = spawn_server(owner, &[], 1);
    server.url = addresses.into_iter().next().expect("server printed its address");
    assert!(server.url.starts_with("quic://127.0.0.1:"), "{}", server.url);
    server
}

/// Starts `cairn server start` on a free loopback port with a generated certificate and `extra` flags, and
/// reads its stderr until it printed `addresses` `SERVER ADDRESS` lines (returned; `url` is left empty).
fn spawn_server(owner: &Env, extra: &[&str], addresses: usize) -> (Server, Vec<String>) {
    let mut cmd: Command = owner.cmd();
    cmd.args(["server", "start", "--address", "127.0.0.1:0", "--tls-generate-cert"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start server");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut fingerprint, mut found) = (None, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    while found.len() < addresses && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(fp) = line.strip_prefix("SERVER CERT SHA256: ") {
            fingerprint = Some(fp.to_string());
        }
        if let Some(address) = line.strip_prefix("SERVER ADDRESS: ") {
            found.push(address.to_string());
        }
    }
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let server =
        Server { child, fingerprint: fingerprint.expect("server printed its fingerprint"), url: String::new() };
    assert_eq!(server.fingerprint.len(), 64);
    (server, found)
}

/// A client env connected to the server as `user@host` with `password`.
fn client(server: &Server, user: &str, host: &str, password: &str) -> Env {
    let env = Env::new();
    let out = env
        .cmd()
        .env("CAIRN_PASSWORD", password)
        .args([
            "repository",
            "connect",
            "server",
            "--url",
            &server.url,
            "--server-cert-fingerprint",
            &server.fingerprint,
        ])
        .args(["--override-username", user, "--override-hostname", host])
        .output()
        .unwrap();
    assert!(out.status.success(), "connect as {user}@{host}: {}", stderr(&out));
    let config = std::fs::read_to_string(env.config()).unwrap();
    assert!(!config.contains(password), "the client config must not hold the password");
    assert!(!config.contains(crate::support::PASSWORD), "nor the repository password");
    env
}

fn run_as(env: &Env, password: &str, args: &[&str]) -> std::process::Output {
    env.cmd().env("CAIRN_PASSWORD", password).args(args).output().unwrap()
}

#[test]
fn two_users_back_up_concurrently_and_stay_apart() {
    let owner = Env::new();
    owner.create_repo();
    owner.ok(&["server", "user", "add", "alice@laptop", "--user-password", "alice-pw"]);
    owner.ok(&["server", "user", "add", "bob@desk", "--user-password", "bob-pw"]);
    let listed = owner.json(&["server", "user", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let server = start_server(&owner);

    let alice = client(&server, "alice", "laptop", "alice-pw");
    let bob = client(&server, "bob", "desk", "bob-pw");
    build_tree(&alice.path("src"), &TreeSpec { small_files: 300, big_file_bytes: 24 << 20 });
    write(&bob.path("src/bob.bin"), &noise(77, 12 << 20));
    write(&bob.path("src/notes.txt"), b"bob's notes");

    // Both back up at the same time.
    let (a_src, b_src) = (alice.path("src"), bob.path("src"));
    let a = std::thread::spawn({
        let env_cmd = alice.cmd();
        let src = a_src.clone();
        move || {
            let mut cmd = env_cmd;
            cmd.env("CAIRN_PASSWORD", "alice-pw")
                .args(["snapshot", "create", src.to_str().unwrap(), "--json"])
                .output()
                .unwrap()
        }
    });
    let b = run_as(&bob, "bob-pw", &["snapshot", "create", b_src.to_str().unwrap(), "--json"]);
    let a = a.join().unwrap();
    assert!(a.status.success() && b.status.success(), "alice: {} bob: {}", stderr(&a), stderr(&b));
    let a_snap: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let b_snap: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    assert_eq!(text(&a_snap, "/source/userName"), "alice");
    assert_eq!(text(&a_snap, "/source/host"), "laptop");

    // Each restores its own data byte-identical.
    let a_out = alice.path("restored");
    let out = run_as(&alice, "alice-pw", &["restore", "latest", a_out.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&a_src, &a_out);
    let b_out = bob.path("restored");
    let out = run_as(&bob, "bob-pw", &["restore", "latest", b_out.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&b_src, &b_out);

    // Neither sees nor reads the other's snapshots.
    let bob_list: serde_json::Value =
        serde_json::from_slice(&run_as(&bob, "bob-pw", &["snapshot", "list", "--all", "--json"]).stdout).unwrap();
    assert_eq!(bob_list.as_array().unwrap().len(), 1, "bob sees only his own: {bob_list}");
    for args in [
        vec!["ls", text(&a_snap, "/id")],
        vec!["restore", text(&a_snap, "/id"), "x"],
        vec!["snapshot", "delete", text(&a_snap, "/id")],
    ] {
        let out = run_as(&bob, "bob-pw", &args);
        assert_eq!(out.status.code(), Some(1), "bob {args:?}: {}", stderr(&out));
    }
    let owner_list = owner.json(&["snapshot", "list", "--all", "--json"]);
    assert_eq!(owner_list.as_array().unwrap().len(), 2, "both snapshots are in the repository");

    // A second backup through the server sends (almost) no chunk bytes.
    let again = run_as(&alice, "alice-pw", &["snapshot", "create", a_src.to_str().unwrap(), "--json"]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(num(&again, "/stats/bytesNew"), 0, "{again}");
    assert_eq!(num(&again, "/stats/bytesRead"), 0, "{again}");
    // Bob backs up a copy of Alice's data: he proves he holds it (a keyed hash per chunk: a claim tells him
    // nothing he could not compute from what he holds, and his snapshot may name only content he showed he
    // holds), sends no chunk, and the repository keeps one copy.
    let data_packs = || -> u64 { file_sizes(&owner.repo().join("p")).iter().sum() };
    let before = data_packs();
    write(&bob.path("src2/copy.bin"), &std::fs::read(a_src.join("big/large.bin")).unwrap());
    let copy = run_as(&bob, "bob-pw", &["snapshot", "create", bob.path("src2").to_str().unwrap(), "--json"]);
    assert!(copy.status.success(), "{}", stderr(&copy));
    let sent: serde_json::Value = serde_json::from_slice(&copy.stdout).unwrap();
    assert!(num(&sent, "/stats/bytesStored") < 1 << 16, "no chunk sent: {sent}");
    assert!(data_packs() - before < 1 << 20, "the copy is stored once: {} bytes more", data_packs() - before);
    let restored = bob.path("copy-restored");
    let out = run_as(&bob, "bob-pw", &["restore", "latest", restored.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(restored.join("copy.bin")).unwrap(), std::fs::read(a_src.join("big/large.bin")).unwrap());
    let _ = b_snap;
}

#[test]
fn wrong_fingerprint_password_and_user_are_refused() {
    let owner = Env::new();
    owner.create_repo();
    owner.ok(&["server", "user", "add", "carol@box", "--user-password", "carol-pw"]);
    let server = start_server(&owner);
    let env = Env::new();
    let connect = |fp: &str, user: &str, pw: &str| {
        env.cmd()
            .env("CAIRN_PASSWORD", pw)
            .args(["repository", "connect", "server", "--url", &server.url, "--server-cert-fingerprint", fp])
            .args(["--override-username", user, "--override-hostname", "box"])
            .output()
            .unwrap()
    };
    let wrong_fp = "ab".repeat(32);
    let out = connect(&wrong_fp, "carol", "carol-pw");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("fingerprint mismatch") && err.contains(&wrong_fp) && err.contains(&server.fingerprint),
        "{err}"
    );
    let out = connect(&server.fingerprint, "carol", "not-carols");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("authentication failed"), "{}", stderr(&out));
    let out = connect(&server.fingerprint, "mallory", "carol-pw");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("authentication failed"), "{}", stderr(&out));
    let out = connect("xyz", "carol", "carol-pw");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid certificate fingerprint"), "{}", stderr(&out));
    // The right credentials still work, and a password change applies without a restart.
    assert!(connect(&server.fingerprint, "carol", "carol-pw").status.success());
    owner.ok(&["server", "user", "set", "carol@box", "--user-password", "new-pw"]);
    assert_eq!(connect(&server.fingerprint, "carol", "carol-pw").status.code(), Some(1));
    assert!(connect(&server.fingerprint, "carol", "new-pw").status.success());
    // A deleted user is refused at its next login, without a restart either.
    owner.ok(&["server", "user", "delete", "carol@box"]);
    let out = connect(&server.fingerprint, "carol", "new-pw");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid user name or password"), "{}", stderr(&out));
}

#[test]
fn killed_client_leaves_the_repository_consistent() {
    let owner = Env::new();
    owner.create_repo();
    owner.ok(&["server", "user", "add", "dave@pc", "--user-password", "dave-pw"]);
    let server = start_server(&owner);
    let dave = client(&server, "dave", "pc", "dave-pw");
    let src = dave.path("src");
    let packs = owner.repo().join("p");
    // Kill the client once the server has stored a pack of its backup, so the kill lands mid-backup
    // whatever the machine's speed (a fixed delay let a fast machine finish first). A backup that still
    // finished before the kill is retried with new data.
    let mut finished = 0;
    let killed = (1..=5).any(|attempt| {
        write(&dave.path("src/a.bin"), &noise(2 * attempt, 48 << 20));
        write(&dave.path("src/b.bin"), &noise(2 * attempt + 1, 48 << 20));
        let before = count_files(&packs);
        let mut child = dave
            .cmd()
            .env("CAIRN_PASSWORD", "dave-pw")
            .args(["snapshot", "create", src.to_str().unwrap()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while count_files(&packs) == before && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        let killed = std::os::unix::process::ExitStatusExt::signal(&status) == Some(9);
        assert!(status.success() || killed, "the backup failed on its own: {status}");
        finished += usize::from(status.success());
        killed
    });
    assert!(killed, "every backup finished before the client could be killed");
    // The next backup completes and everything restores.
    let out = run_as(&dave, "dave-pw", &["snapshot", "create", src.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let restored = dave.path("out");
    let out = run_as(&dave, "dave-pw", &["restore", "latest", restored.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &restored);
    // The repository opened directly lists exactly the complete snapshots, and checks clean.
    let list = owner.json(&["snapshot", "list", "--all", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), finished + 1);
    owner.ok(&["repository", "check"]);
}

#[test]
fn server_isolated_user_has_no_cross_user_dedup() {
    let owner = Env::new();
    owner.create_repo();
    owner.ok(&["server", "user", "add", "erin@one", "--user-password", "erin-pw"]);
    owner.ok(&["server", "user", "add", "frank@two", "--user-password", "frank-pw", "--isolated"]);
    let listed = owner.json(&["server", "user", "list", "--json"]);
    let frank = listed.as_array().unwrap().iter().find(|u| u["name"] == "frank@two").unwrap().clone();
    assert_eq!(frank["isolated"], true, "{listed}");
    let server = start_server(&owner);
    let erin = client(&server, "erin", "one", "erin-pw");
    let frank = client(&server, "frank", "two", "frank-pw");
    let data = noise(31, 6 << 20);
    write(&erin.path("src/shared.bin"), &data);
    write(&frank.path("src/shared.bin"), &data);
    write(&frank.path("src/small.txt"), b"frank's own words");

    let e = run_as(&erin, "erin-pw", &["snapshot", "create", erin.path("src").to_str().unwrap(), "--json"]);
    assert!(e.status.success(), "{}", stderr(&e));
    // Frank stores the very same bytes: nothing deduplicates against Erin's, so a Claim cannot tell him
    // that somebody else holds them.
    let f = run_as(&frank, "frank-pw", &["snapshot", "create", frank.path("src").to_str().unwrap(), "--json"]);
    assert!(f.status.success(), "{}", stderr(&f));
    let f: serde_json::Value = serde_json::from_slice(&f.stdout).unwrap();
    assert_eq!(num(&f, "/stats/bytesNew"), data.len() as u64 + 17, "{f}");
    // A second backup of his dedups against his own content.
    let again = run_as(&frank, "frank-pw", &["snapshot", "create", frank.path("src").to_str().unwrap(), "--json"]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(num(&again, "/stats/bytesNew"), 0, "{again}");

    // He restores his data through the server, and the owner restores it directly with the password.
    let out = run_as(&frank, "frank-pw", &["restore", "latest", frank.path("out").to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&frank.path("src"), &frank.path("out"));
    let record = owner.json(&["snapshot", "list", "--all", "--json"]);
    let franks: Vec<_> = record.as_array().unwrap().iter().filter(|s| s["source"]["userName"] == "frank").collect();
    assert_eq!(franks.len(), 2);
    assert_eq!(franks[0]["tenant"], "frank@two", "the record names the key of its content: {record}");
    let direct = owner.path("frank-direct");
    owner.ok(&["restore", franks[0]["id"].as_str().unwrap(), direct.to_str().unwrap()]);
    assert_same_tree(&frank.path("src"), &direct);
    // An admin restores it through the server too: its client checks his content under his key, which the
    // server gives admins only.
    owner.ok(&["server", "user", "add", "root@ops", "--user-password", "root-pw", "--admin"]);
    let admin = client(&server, "root", "ops", "root-pw");
    let via = admin.path("frank-via-server");
    let out = run_as(&admin, "root-pw", &["restore", franks[0]["id"].as_str().unwrap(), via.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&frank.path("src"), &via);
    // Verification re-hashes his content under his key, and the repository is whole.
    owner.ok(&["snapshot", "verify", "--verify-files-percent", "100"]);
    owner.ok(&["repository", "check", "--read-all-data"]);
}

/// With `--ui`, the repository server runs beside the UI server on the same port number (UDP beside TCP):
/// the UI's `SERVER ADDRESS: https://...` line comes first, the `quic://` one after it, and clients back up
/// through it as through `cairn server start` alone.
#[test]
fn ui_server_runs_the_repository_server_beside_it() {
    let owner = Env::new();
    owner.create_repo();
    owner.ok(&["server", "user", "add", "erin@pc", "--user-password", "erin-pw"]);
    let (mut server, addresses) = spawn_server(&owner, &["--ui", "--server-password", "ui-pw"], 2);
    assert_eq!(addresses.len(), 2, "{addresses:?}");
    let port =
        |url: &str, scheme: &str| url.strip_prefix(scheme).and_then(|a| a.rsplit(':').next()).map(str::to_string);
    let https = port(&addresses[0], "https://127.0.0.1:").expect("the UI's address comes first");
    let quic = port(&addresses[1], "quic://127.0.0.1:").expect("the repository server's address comes second");
    assert_eq!(https, quic, "{addresses:?}");
    server.url = addresses[1].clone();
    let erin = client(&server, "erin", "pc", "erin-pw");
    write(&erin.path("src/a.txt"), b"through the UI server's QUIC side");
    let out = run_as(&erin, "erin-pw", &["snapshot", "create", erin.path("src").to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = owner.json(&["snapshot", "list", "--all", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(text(&list[0], "/source/userName"), "erin");
}
