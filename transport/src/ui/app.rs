//! The UI server's state and the actions the API and the scheduler share: starting a snapshot, a restore
//! or maintenance as a task, and summarising sources.

use cairn_engine::Access;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use cairn_engine::backup::Progress;
use cairn_engine::policy::Policy;
use cairn_engine::restore::RestoreProgress;
use cairn_engine::scheduler::next_snapshot_time;
use cairn_engine::snapshot::{Snapshot, Source};
use cairn_engine::{Error, Repository};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::auth::Auth;
use super::jobs;
use super::tasks::{Counters, StartError, Task, TaskKind, Tasks};

/// Who snapshots are recorded as on this machine.
#[derive(Clone, Debug)]
pub struct LocalIdentity {
    pub user: String,
    pub host: String,
}

/// Schedule bookkeeping kept in memory.
#[derive(Default)]
pub struct ScheduleState {
    /// When this server last started a snapshot of each source (successful or not).
    pub last_attempt: HashMap<Source, DateTime<Utc>>,
    pub last_maintenance: Option<DateTime<Utc>>,
    pub next_maintenance: Option<DateTime<Utc>>,
}

/// Everything a request handler or the scheduler needs.
pub struct App {
    pub repo: Arc<Repository>,
    pub auth: Auth,
    pub tasks: Arc<Tasks>,
    pub identity: LocalIdentity,
    /// Where the repository is, for the status page.
    pub location: String,
    /// Seconds between quick maintenance runs (`None`: never).
    pub maintenance_interval: Option<u64>,
    pub schedule: Mutex<ScheduleState>,
    /// Held shared by every snapshot task (they add to the in-memory index), and exclusively while the
    /// index is reloaded from storage: a reload racing a backup's index write would drop its entries.
    pub index_guard: RwLock<()>,
}

impl App {
    pub fn schedule(&self) -> MutexGuard<'_, ScheduleState> {
        self.schedule.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The source a local folder is recorded under.
    pub fn local_source(&self, path: &str) -> Source {
        Source { user_name: self.identity.user.clone(), host: self.identity.host.clone(), path: path.to_string() }
    }

    /// Starts a snapshot of a local source; refused while one of the same source runs.
    pub fn start_snapshot(self: &Arc<Self>, source: Source, scheduled: bool) -> Result<Arc<Task>, StartError> {
        let progress = Arc::new(Progress::default());
        let app = self.clone();
        let work_source = source.clone();
        let counters = Counters::Backup(progress.clone());
        let description = format!("snapshot of {}", source.path);
        let task = self.tasks.start(TaskKind::Snapshot, description, Some(source.clone()), scheduled, counters, {
            move |task| {
                let _writing = app.index_guard.read().unwrap_or_else(|p| p.into_inner());
                jobs::snapshot(&app.repo, &work_source, task, progress)
            }
        })?;
        self.schedule().last_attempt.insert(source, task.started);
        Ok(task)
    }

    /// Starts a restore.
    pub fn start_restore(self: &Arc<Self>, request: jobs::RestoreRequest) -> Result<Arc<Task>, StartError> {
        let progress = Arc::new(RestoreProgress::default());
        let total_bytes = jobs::restore_total(&self.repo, &request.snapshot, &request.path);
        let description = format!(
            "restore of {}/{} to {}",
            request.snapshot.id,
            request.path.trim_matches('/'),
            request.target.display()
        );
        let app = self.clone();
        let counters = Counters::Restore { progress: progress.clone(), total_bytes };
        self.tasks.start(TaskKind::Restore, description, None, false, counters, move |task| {
            jobs::restore_path(&app.repo, &request, task, &progress)
        })
    }

    /// Starts quick maintenance.
    pub fn start_maintenance(self: &Arc<Self>, scheduled: bool) -> Result<Arc<Task>, StartError> {
        let app = self.clone();
        let task = self.tasks.start(
            TaskKind::Maintenance,
            "quick maintenance".into(),
            None,
            scheduled,
            Counters::None,
            move |task| {
                if !app.refresh_index()? {
                    task.log("index not reloaded: a snapshot is writing to it");
                }
                jobs::quick_maintenance(&app.repo, task, &app.tasks.busy_sources())
            },
        )?;
        self.schedule().last_maintenance = Some(task.started);
        Ok(task)
    }

    /// Reloads the index from storage (to see what other clients wrote since the server started), unless
    /// a snapshot task is writing to it now; true when reloaded.
    pub fn refresh_index(&self) -> Result<bool, Error> {
        match self.index_guard.try_write() {
            Ok(_exclusive) => {
                self.repo.reload_index()?;
                Ok(true)
            }
            Err(std::sync::TryLockError::Poisoned(_)) | Err(std::sync::TryLockError::WouldBlock) => Ok(false),
        }
    }

    /// The snapshot named by an id prefix, with the index refreshed first when its root is not in it (it
    /// was written by another client after this server loaded the index).
    pub fn snapshot(&self, prefix: &str) -> Result<Snapshot, Error> {
        let snap = self.repo.find_snapshot(prefix)?;
        if !self.repo.index().contains(&snap.root) {
            self.refresh_index()?;
        }
        Ok(snap)
    }

    /// This machine's sources: those with snapshots, a policy, or a running task, each with its last
    /// snapshot, policy and next scheduled time.
    pub fn sources(&self) -> Result<Vec<Value>, Error> {
        let snapshots = self.repo.list_snapshots()?;
        let policies: HashMap<Source, Policy> = self.repo.policies()?.into_iter().collect();
        let is_local = |s: &Source| s.user_name == self.identity.user && s.host == self.identity.host;
        let mut sources: BTreeMap<Source, (Option<&Snapshot>, usize)> = BTreeMap::new();
        for snap in snapshots.iter().filter(|s| is_local(&s.source)) {
            let entry = sources.entry(snap.source.clone()).or_default();
            entry.0 = Some(snap);
            entry.1 += 1;
        }
        for source in policies.keys().filter(|s| is_local(s)) {
            sources.entry(source.clone()).or_default();
        }
        let running: HashMap<Source, u64> = self
            .tasks
            .list()
            .into_iter()
            .filter(|t| t.status() == super::tasks::Status::Running)
            .filter_map(|t| t.source.clone().map(|s| (s, t.id)))
            .collect();
        for source in running.keys() {
            sources.entry(source.clone()).or_default();
        }
        let attempts = self.schedule().last_attempt.clone();
        let now = Utc::now();
        Ok(sources
            .into_iter()
            .map(|(source, (last, count))| {
                let policy = policies.get(&source).cloned().unwrap_or_default();
                let next = next_snapshot_time(&policy, last.map(|s| s.start_time), attempts.get(&source).copied(), now);
                json!({
                    "key": source.to_string(),
                    "source": source,
                    "path": source.path,
                    "snapshots": count,
                    "lastSnapshot": last.map(jobs::snapshot_json),
                    "policy": policy,
                    "nextSnapshotTime": next.map(|t| t.to_rfc3339()),
                    "runningTask": running.get(&source),
                })
            })
            .collect())
    }
}
