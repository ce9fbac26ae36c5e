//! Small helpers for output: human-readable sizes and rates, JSON, and the `outln!`/`errln!` macros every
//! command prints with. Those never panic (`println!` does when standard output is a full disk or a closed
//! pipe): a failed write to standard output is kept and reported by `main` once the command has finished
//! normally, and a message that cannot be written to standard error is dropped.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

/// The first write to standard output that failed. Later writes are skipped.
static STDOUT_FAILURE: Mutex<Option<io::Error>> = Mutex::new(None);

/// Like `println!`, without the panic: see [`write_stdout`].
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}

/// Like `eprintln!`, without the panic: see [`write_stderr`].
macro_rules! errln {
    () => {
        $crate::output::write_stderr(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stderr(format_args!($($arg)*))
    };
}

/// Writes one line to standard output. When that fails (a full disk, a reader that went away), the error is
/// kept for [`stdout_failure`] and nothing more is written; the command itself goes on and ends normally.
pub fn write_stdout(line: fmt::Arguments<'_>) {
    let mut failure = STDOUT_FAILURE.lock().unwrap_or_else(|p| p.into_inner());
    if failure.is_some() {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(format_args!("{line}\n")).and_then(|()| out.flush()) {
        *failure = Some(e);
    }
}

/// Writes one line to standard error, or drops it when that fails: there is nowhere else to say so.
pub fn write_stderr(line: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(format_args!("{line}\n"));
}

/// The first write to standard output that failed, if any.
pub fn stdout_failure() -> Option<io::Error> {
    STDOUT_FAILURE.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// Bytes in decimal units, as Kopia prints them ("1.2 GB").
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Throughput in MB/s.
pub fn rate(bytes: u64, seconds: f64) -> String {
    if seconds <= 0.0 {
        return "-".into();
    }
    format!("{:.1} MB/s", bytes as f64 / 1e6 / seconds)
}

/// Prints a value as pretty JSON on stdout.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
