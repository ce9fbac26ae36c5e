//! Running the real binary against a scratch repository.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const PASSWORD: &str = "correct horse battery staple";

/// A scratch folder with a config file and a repository in it.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("cairn-e2e-").tempdir().expect("tempdir");
        Env { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config(&self) -> PathBuf {
        self.path("config/repository.config")
    }

    pub fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    /// A command for the binary with this env's config, password and a private XDG layout.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.arg("--config-file")
            .arg(self.config())
            .env("CAIRN_PASSWORD", PASSWORD)
            .env("CAIRN_DISABLE_KEYRING", "1")
            .env("XDG_CONFIG_HOME", self.path("xdg-config"))
            .env("XDG_CACHE_HOME", self.path("xdg-cache"))
            .env_remove("CAIRN_CONFIG_PATH");
        cmd
    }

    /// Runs with the given arguments and returns the output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run cairn")
    }

    /// Runs and asserts success.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cairn {args:?} failed ({:?})\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs, asserts success and parses stdout as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("cairn {args:?} printed invalid JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
        })
    }

    /// Creates the repository and connects to it.
    pub fn create_repo(&self) {
        let repo = self.repo();
        self.ok(&["repository", "create", "filesystem", "--path", repo.to_str().unwrap()]);
    }

    /// Backs up `path`, returning the JSON result.
    pub fn snapshot(&self, path: &Path) -> Value {
        self.json(&["snapshot", "create", path.to_str().unwrap(), "--json"])
    }
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A number from a JSON object, with a clear panic when missing.
pub fn num(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or_else(|| panic!("no number at {pointer} in {v}"))
}

/// A string from a JSON object.
pub fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
}

/// Whether `program` runs (`program arg` exits 0). Under CI, which installs the tools the tests use, a
/// missing one fails the test; elsewhere the caller skips its part, and this says so.
pub fn tool_available(program: &str, arg: &str) -> bool {
    let found = Command::new(program).arg(arg).stdout(std::process::Stdio::null()).status().is_ok_and(|s| s.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "{program} is missing; .ci/run installs it");
        eprintln!("SKIPPED: {program} is missing");
    }
    found
}

/// A mount made by a test; unmounted on drop, so a failing test leaves no mount behind.
pub struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Runs `mount ARGS… TARGET`, or returns `None` (with a message naming `test`) when that is not allowed
/// (mounting needs root).
pub fn mount(args: &[&std::ffi::OsStr], target: &Path, test: &str) -> Option<Mount> {
    std::fs::create_dir_all(target).unwrap();
    match Command::new("mount").args(args).arg(target).output() {
        Ok(out) if out.status.success() => Some(Mount(target.to_path_buf())),
        other => {
            eprintln!("SKIPPED {test}: cannot mount ({other:?})");
            None
        }
    }
}

/// The size of every file below `dir` (not descending into symlinks; nothing when `dir` is missing).
pub fn file_sizes(dir: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .flat_map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => file_sizes(&e.path()),
            _ => vec![e.metadata().map(|m| m.len()).unwrap_or(0)],
        })
        .collect()
}

/// Visible blobs under `dir`: hidden `.tmp-*` files are writes still in progress (the storage never lists
/// them), and counting them made the kill test stop a backup before its index blob existed.
pub fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                count_files(&e.path())
            } else {
                usize::from(!e.file_name().to_string_lossy().starts_with('.'))
            }
        })
        .sum()
}
