//! Long work (snapshots, restores, maintenance) as tasks: each runs on its own thread, exposes live
//! progress read from the engine's atomic counters, can be cancelled, and keeps a log in memory and in a
//! file of its own (one file per run in the log folder, oldest files removed past [`KEEP_LOG_FILES`]).
//! Two snapshots of one source never run at once: starting a second is refused.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cairn_engine::backup::Progress;
use cairn_engine::restore::RestoreProgress;
use cairn_engine::snapshot::Source;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// Finished tasks remembered for the API.
const KEEP_TASKS: usize = 200;
/// Log files kept in the log folder.
pub const KEEP_LOG_FILES: usize = 100;
/// Log lines kept in memory per task.
const KEEP_LOG_LINES: usize = 2000;

/// What a task does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    Snapshot,
    Restore,
    Maintenance,
}

impl TaskKind {
    fn name(self) -> &'static str {
        match self {
            TaskKind::Snapshot => "snapshot",
            TaskKind::Restore => "restore",
            TaskKind::Maintenance => "maintenance",
        }
    }
}

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Running,
    Success,
    Failed,
    Cancelled,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Success => "success",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// The counters a task's progress is read from.
pub enum Counters {
    Backup(Arc<Progress>),
    Restore { progress: Arc<RestoreProgress>, total_bytes: u64 },
    None,
}

struct State {
    status: Status,
    finished: Option<DateTime<Utc>>,
    result: Option<Value>,
    error: Option<String>,
    logs: VecDeque<String>,
    log_file: Option<File>,
}

/// One task.
pub struct Task {
    pub id: u64,
    pub kind: TaskKind,
    pub description: String,
    /// The source a snapshot task backs up.
    pub source: Option<Source>,
    /// Started by the scheduler rather than by a request.
    pub scheduled: bool,
    pub started: DateTime<Utc>,
    started_at: Instant,
    cancel: Arc<AtomicBool>,
    counters: Counters,
    state: Mutex<State>,
}

impl Task {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a line to the task's log (memory and file).
    pub fn log(&self, line: impl AsRef<str>) {
        let line = format!("{} {}", Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"), line.as_ref());
        tracing::info!(task = self.id, "{}", line);
        let mut state = self.state();
        if let Some(file) = state.log_file.as_mut() {
            let _ = writeln!(file, "{line}");
        }
        if state.logs.len() >= KEEP_LOG_LINES {
            state.logs.pop_front();
        }
        state.logs.push_back(line);
    }

    /// The flag the work polls to stop early.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Asks the work to stop.
    pub fn cancel(&self) {
        if self.status() == Status::Running {
            self.cancel.store(true, Relaxed);
        }
    }

    pub fn status(&self) -> Status {
        self.state().status
    }

    /// The log lines kept in memory.
    pub fn logs(&self) -> Vec<String> {
        self.state().logs.iter().cloned().collect()
    }

    /// Live progress: counts, bytes, throughput and an estimate of the time left.
    pub fn progress(&self) -> Value {
        let secs = self.started_at.elapsed().as_secs_f64().max(1e-3);
        match &self.counters {
            Counters::Backup(p) => {
                let bytes_done = p.bytes_done.load(Relaxed);
                let bytes_total = p.bytes_found.load(Relaxed);
                let walk_done = p.walk_done.load(Relaxed);
                progress_json(
                    bytes_done,
                    bytes_total,
                    walk_done,
                    secs,
                    json!({
                        "filesDone": p.files_done.load(Relaxed),
                        "filesTotal": p.files_found.load(Relaxed),
                        "filesUnchanged": p.files_unchanged.load(Relaxed),
                        "bytesNew": p.bytes_new.load(Relaxed),
                        "errors": p.errors.load(Relaxed),
                    }),
                )
            }
            Counters::Restore { progress, total_bytes } => progress_json(
                progress.bytes.load(Relaxed),
                *total_bytes,
                true,
                secs,
                json!({"filesDone": progress.files.load(Relaxed)}),
            ),
            Counters::None => json!({}),
        }
    }

    /// The task as the API shows it.
    pub fn to_json(&self, with_logs: bool) -> Value {
        let state = self.state();
        let mut value = json!({
            "id": self.id,
            "kind": self.kind.name(),
            "description": self.description,
            "source": self.source,
            "scheduled": self.scheduled,
            "status": state.status.name(),
            "started": self.started.to_rfc3339(),
            "finished": state.finished.map(|t| t.to_rfc3339()),
            "result": state.result,
            "error": state.error,
        });
        drop(state);
        value["progress"] = self.progress();
        if with_logs {
            value["logs"] = json!(self.logs());
        }
        value
    }
}

fn progress_json(done: u64, total: u64, total_known: bool, secs: f64, mut extra: Value) -> Value {
    let rate = done as f64 / secs;
    let eta = (total_known && rate > 0.0 && total >= done).then(|| (total - done) as f64 / rate);
    let percent = (total_known && total > 0).then(|| (100.0 * done as f64 / total as f64).min(100.0));
    if let Some(obj) = extra.as_object_mut() {
        obj.insert("bytesDone".into(), done.into());
        obj.insert("bytesTotal".into(), total.into());
        obj.insert("totalKnown".into(), total_known.into());
        obj.insert("bytesPerSecond".into(), rate.into());
        obj.insert("etaSeconds".into(), json!(eta));
        obj.insert("percent".into(), json!(percent));
        obj.insert("elapsedSeconds".into(), secs.into());
    }
    extra
}

/// Why a task was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("a snapshot of {0} is already running")]
    SourceBusy(Source),
    #[error("maintenance is already running")]
    MaintenanceBusy,
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// What a task's work returns: a JSON result, or an error (cancellation included).
pub type Outcome = Result<Value, cairn_engine::Error>;

struct Inner {
    tasks: VecDeque<Arc<Task>>,
    busy_sources: HashSet<Source>,
    maintenance_busy: bool,
    running: usize,
    closed: bool,
}

/// Every task of this server.
pub struct Tasks {
    inner: Mutex<Inner>,
    idle: Condvar,
    next_id: AtomicU64,
    log_dir: Option<PathBuf>,
}

impl Tasks {
    /// `log_dir` receives one log file per task (created when missing); `None` keeps logs in memory only.
    pub fn new(log_dir: Option<PathBuf>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                tasks: VecDeque::new(),
                busy_sources: HashSet::new(),
                maintenance_busy: false,
                running: 0,
                closed: false,
            }),
            idle: Condvar::new(),
            next_id: AtomicU64::new(1),
            log_dir,
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `work` on a new thread as a task. A snapshot task holds its source until it ends.
    pub fn start<F>(
        self: &Arc<Self>,
        kind: TaskKind,
        description: String,
        source: Option<Source>,
        scheduled: bool,
        counters: Counters,
        work: F,
    ) -> Result<Arc<Task>, StartError>
    where
        F: FnOnce(&Task) -> Outcome + Send + 'static,
    {
        // Admission first, so a refused task leaves no trace (not even a log file).
        {
            let mut inner = self.inner();
            if inner.closed {
                return Err(StartError::ShuttingDown);
            }
            if kind == TaskKind::Maintenance && inner.maintenance_busy {
                return Err(StartError::MaintenanceBusy);
            }
            if let Some(source) = &source {
                if !inner.busy_sources.insert(source.clone()) {
                    return Err(StartError::SourceBusy(source.clone()));
                }
            }
            if kind == TaskKind::Maintenance {
                inner.maintenance_busy = true;
            }
            inner.running += 1;
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        let started = Utc::now();
        let log_file = self.open_log(id, kind, &started);
        let task = Arc::new(Task {
            id,
            kind,
            description,
            source,
            scheduled,
            started,
            started_at: Instant::now(),
            cancel: Arc::new(AtomicBool::new(false)),
            counters,
            state: Mutex::new(State {
                status: Status::Running,
                finished: None,
                result: None,
                error: None,
                logs: VecDeque::new(),
                log_file,
            }),
        });
        {
            let mut inner = self.inner();
            if inner.tasks.len() >= KEEP_TASKS {
                if let Some(pos) = inner.tasks.iter().position(|t| t.status() != Status::Running) {
                    inner.tasks.remove(pos);
                }
            }
            inner.tasks.push_back(task.clone());
        }
        task.log(format!("started {} task {id}: {}", kind.name(), task.description));
        let tasks = self.clone();
        let runner = task.clone();
        let spawned = std::thread::Builder::new().name(format!("cairn-task-{id}")).spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&runner)))
                .unwrap_or_else(|_| Err(cairn_engine::Error::InvalidArgument("the task panicked".into())));
            tasks.finish(&runner, outcome);
        });
        if let Err(e) = spawned {
            self.finish(&task, Err(cairn_engine::Error::InvalidArgument(format!("cannot start a thread: {e}"))));
        }
        Ok(task)
    }

    fn finish(&self, task: &Task, outcome: Outcome) {
        let (status, line) = match &outcome {
            Ok(_) => (Status::Success, "finished".to_string()),
            Err(e) if e.kind() == cairn_engine::ErrorKind::Cancelled => (Status::Cancelled, "cancelled".to_string()),
            Err(e) => (Status::Failed, format!("failed: {e}")),
        };
        task.log(&line);
        {
            let mut state = task.state();
            state.status = status;
            state.finished = Some(Utc::now());
            match outcome {
                Ok(v) => state.result = Some(v),
                Err(e) => state.error = Some(e.to_string()),
            }
            state.log_file = None;
        }
        let mut inner = self.inner();
        if let Some(source) = &task.source {
            inner.busy_sources.remove(source);
        }
        if task.kind == TaskKind::Maintenance {
            inner.maintenance_busy = false;
        }
        inner.running -= 1;
        drop(inner);
        self.idle.notify_all();
    }

    fn open_log(&self, id: u64, kind: TaskKind, started: &DateTime<Utc>) -> Option<File> {
        let dir = self.log_dir.as_ref()?;
        if let Err(e) = fs::create_dir_all(dir) {
            tracing::warn!("cannot create log folder {}: {e}", dir.display());
            return None;
        }
        rotate(dir, KEEP_LOG_FILES.saturating_sub(1));
        let name = format!("cairn-{}-{}-{id}.log", started.format("%Y%m%d-%H%M%S%.3f"), kind.name());
        match File::create(dir.join(&name)) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!("cannot create log file {name}: {e}");
                None
            }
        }
    }

    /// Every remembered task, oldest first.
    pub fn list(&self) -> Vec<Arc<Task>> {
        self.inner().tasks.iter().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<Arc<Task>> {
        self.inner().tasks.iter().find(|t| t.id == id).cloned()
    }

    /// Sources with a snapshot running now.
    pub fn busy_sources(&self) -> HashSet<Source> {
        self.inner().busy_sources.clone()
    }

    pub fn maintenance_busy(&self) -> bool {
        self.inner().maintenance_busy
    }

    /// Refuses new tasks and cancels the running ones.
    pub fn close(&self) {
        let tasks = {
            let mut inner = self.inner();
            inner.closed = true;
            inner.tasks.clone()
        };
        for t in tasks {
            t.cancel();
        }
    }

    /// Waits until no task runs, at most `timeout`; true when idle.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut inner = self.inner();
        while inner.running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            inner = self.idle.wait_timeout(inner, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }
}

/// Deletes the oldest `cairn-*.log` files in `dir` so that at most `keep` remain.
pub fn rotate(dir: &Path, keep: usize) {
    rotate_named(dir, "cairn-", keep);
}

/// Deletes the oldest `<prefix>*.log` files in `dir` (names that start with their creation time after
/// the prefix) so that at most `keep` remain.
pub fn rotate_named(dir: &Path, prefix: &str, keep: usize) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut logs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix) && n.ends_with(".log"))
        })
        .collect();
    if logs.len() <= keep {
        return;
    }
    // Names start with the start time, so name order is age order.
    logs.sort();
    for old in &logs[..logs.len() - keep] {
        let _ = fs::remove_file(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Source {
        Source { user_name: "u".into(), host: "h".into(), path: "/p".into() }
    }

    #[test]
    fn one_snapshot_per_source_and_cancel_reaches_the_work() {
        let dir = tempfile::tempdir().unwrap();
        let tasks = Arc::new(Tasks::new(Some(dir.path().join("logs"))));
        let first = tasks
            .start(TaskKind::Snapshot, "a".into(), Some(source()), false, Counters::None, |task| {
                let cancel = task.cancel_flag();
                while !cancel.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                task.log("saw the cancel flag");
                Err(cairn_engine::Error::Cancelled)
            })
            .unwrap();
        let second =
            tasks.start(TaskKind::Snapshot, "b".into(), Some(source()), false, Counters::None, |_| Ok(json!(1)));
        assert!(matches!(second, Err(StartError::SourceBusy(_))));
        assert_eq!(tasks.busy_sources().len(), 1);
        tasks.close();
        assert!(tasks.wait_idle(Duration::from_secs(5)));
        assert_eq!(first.status(), Status::Cancelled);
        assert!(tasks.busy_sources().is_empty());
        assert!(first.logs().iter().any(|l| l.ends_with("saw the cancel flag")));
        let files: Vec<_> = fs::read_dir(dir.path().join("logs")).unwrap().collect();
        assert_eq!(files.len(), 1);
        let text = fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        assert!(text.contains("saw the cancel flag") && text.contains("cancelled"), "{text}");
        let refused = tasks.start(TaskKind::Maintenance, "m".into(), None, false, Counters::None, |_| Ok(json!(1)));
        assert!(matches!(refused, Err(StartError::ShuttingDown)));
    }

    #[test]
    fn results_and_failures_are_recorded() {
        let tasks = Arc::new(Tasks::new(None));
        let ok = tasks.start(TaskKind::Maintenance, "m".into(), None, false, Counters::None, |_| Ok(json!({"n": 1})));
        let ok = ok.unwrap();
        assert!(tasks.wait_idle(Duration::from_secs(5)));
        let bad = tasks
            .start(TaskKind::Restore, "r".into(), None, false, Counters::None, |_| {
                Err(cairn_engine::Error::NotFound("snapshot x".into()))
            })
            .unwrap();
        assert!(tasks.wait_idle(Duration::from_secs(5)));
        assert_eq!(ok.to_json(false)["result"]["n"], 1);
        assert_eq!(bad.to_json(true)["status"], "failed");
        assert!(bad.to_json(false)["error"].as_str().unwrap().contains("snapshot x"));
        assert_eq!(tasks.list().len(), 2);
        assert!(tasks.get(bad.id).is_some());
    }

    #[test]
    fn rotation_keeps_the_newest_logs() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            fs::write(dir.path().join(format!("cairn-2026010{i}-snapshot-{i}.log")), "x").unwrap();
        }
        fs::write(dir.path().join("other.txt"), "x").unwrap();
        rotate(dir.path(), 2);
        let mut left: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, vec!["cairn-20260103-snapshot-3.log", "cairn-20260104-snapshot-4.log", "other.txt"]);
    }
}
