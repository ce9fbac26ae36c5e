//! Progress display on a terminal (indicatif): files, bytes, throughput and ETA, redrawn from the engine's
//! atomic counters by a ticker, so the pipeline never waits for the display.

use std::io::IsTerminal;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use cairn_engine::backup::Progress;
use cairn_engine::restore::RestoreProgress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output;

/// A bar that polls counters until dropped.
pub struct Display {
    bar: Option<ProgressBar>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

fn bar(enabled: bool) -> Option<ProgressBar> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    Some(bar)
}

impl Display {
    /// Shows backup progress unless disabled or stderr is not a terminal.
    pub fn backup(progress: Arc<Progress>, enabled: bool) -> Self {
        Self::start(bar(enabled), move |bar| {
            bar.set_length(progress.bytes_found.load(Relaxed).max(1));
            bar.set_position(progress.bytes_done.load(Relaxed));
            let found = progress.files_found.load(Relaxed);
            let suffix = if progress.walk_done.load(Relaxed) { "" } else { "+" };
            bar.set_message(format!(
                "files {}/{}{} new {} errors {}",
                progress.files_done.load(Relaxed),
                found,
                suffix,
                output::bytes(progress.bytes_new.load(Relaxed)),
                progress.errors.load(Relaxed)
            ));
        })
    }

    /// Shows restore progress against a known total.
    pub fn restore(progress: Arc<RestoreProgress>, total_bytes: u64, enabled: bool) -> Self {
        Self::start(bar(enabled), move |bar| {
            bar.set_length(total_bytes.max(1));
            bar.set_position(progress.bytes.load(Relaxed));
            bar.set_message(format!("files {}", progress.files.load(Relaxed)));
        })
    }

    fn start(bar: Option<ProgressBar>, update: impl Fn(&ProgressBar) + Send + 'static) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ticker = bar.clone().map(|bar| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    update(&bar);
                    bar.tick();
                    std::thread::sleep(Duration::from_millis(250));
                }
                update(&bar);
            })
        });
        Self { bar, stop, ticker }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
