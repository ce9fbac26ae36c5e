//! The background loop: about once a second it reads policies and snapshot times from the repository,
//! asks `cairn_engine::scheduler` what is due, and starts those snapshots and quick maintenance as tasks.

use cairn_engine::Access;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_engine::scheduler::{plan, State};
use cairn_engine::snapshot::Source;
use chrono::{DateTime, Utc};

use super::app::App;

/// How often the loop looks at the schedule.
pub const TICK: Duration = Duration::from_millis(1000);

/// Runs until `stop` resolves.
pub async fn run(app: Arc<App>, stop: tokio::sync::watch::Receiver<bool>) {
    let mut stop = stop;
    loop {
        let app2 = app.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || tick(&app2)).await {
            tracing::warn!("scheduler: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// One look at the schedule: starts whatever is due.
pub fn tick(app: &Arc<App>) -> Result<(), cairn_engine::Error> {
    let policies: Vec<_> = app
        .repo
        .policies()?
        .into_iter()
        .filter(|(s, _)| s.user_name == app.identity.user && s.host == app.identity.host)
        .collect();
    let mut last_snapshot: HashMap<Source, DateTime<Utc>> = HashMap::new();
    if policies.iter().any(|(_, p)| p.snapshot_interval_seconds.is_some()) {
        for snap in app.repo.list_snapshots()? {
            let t = last_snapshot.entry(snap.source.clone()).or_insert(snap.start_time);
            *t = (*t).max(snap.start_time);
        }
    }
    let (last_attempt, last_maintenance) = {
        let s = app.schedule();
        (s.last_attempt.clone(), s.last_maintenance)
    };
    let running = app.tasks.busy_sources();
    let now = Utc::now();
    let due = plan(
        &State {
            policies: &policies,
            last_snapshot: &last_snapshot,
            last_attempt: &last_attempt,
            running: &running,
            maintenance_interval: app.maintenance_interval,
            last_maintenance,
            maintenance_running: app.tasks.maintenance_busy(),
        },
        now,
    );
    app.schedule().next_maintenance = app.maintenance_interval.and_then(|i| {
        last_maintenance
            .map(|t| t + chrono::Duration::seconds(i64::try_from(i).unwrap_or(i64::MAX / 1000).min(1 << 40)))
    });
    for source in due.snapshots {
        if !std::path::Path::new(&source.path).is_dir() {
            tracing::warn!("scheduler: {} is not a folder here; skipping", source.path);
            app.schedule().last_attempt.insert(source, now);
            continue;
        }
        match app.start_snapshot(source.clone(), true) {
            Ok(task) => tracing::info!("scheduler: started task {} for {source}", task.id),
            Err(e) => tracing::info!("scheduler: {e}"),
        }
    }
    if due.maintenance {
        if let Err(e) = app.start_maintenance(true) {
            tracing::info!("scheduler: {e}");
        }
    }
    Ok(())
}
