//! The `cairn` binary: parses arguments, runs one command, prints one clear line on failure.
//!
//! Exit codes: 0 success; 1 error (including output that could not be written); 2 invalid arguments; 3
//! finished with some files not backed up or not restored (the snapshot is recorded and marked incomplete);
//! 141 standard output was closed by its reader (as for a process ended by SIGPIPE; nothing else is said).

// First, so that its `outln!` and `errln!` are in scope in every module below.
#[macro_use]
mod output;

mod args;
mod commands;
mod config;
mod credentials;
mod heap;
mod progress;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::args::{Cli, Command};
use crate::commands::{Context, Incomplete};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Cairn's own crates log at the chosen level, other crates not at all. A plain list of targets,
    // not an `EnvFilter`: parsing filter directives touched about a megabyte of code pages before the key
    // derivation, whose 64 MiB sets every command's peak RSS.
    let level = cli
        .global
        .log_level
        .parse::<tracing::level_filters::LevelFilter>()
        .unwrap_or(tracing::level_filters::LevelFilter::WARN);
    let filter = tracing_subscriber::filter::Targets::new()
        .with_targets(["cairn", "cairn_engine", "cairn_transport"].map(|target| (target, level)));
    // Colours only on a terminal: a launcher forwards stderr to a log file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).without_time())
        .with(filter)
        .init();
    let outcome = run(cli);
    let unwritten = output::stdout_failure();
    match outcome {
        Ok(()) => match unwritten {
            None => ExitCode::SUCCESS,
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(141),
            Some(e) => {
                errln!("ERROR: writing to standard output: {e}");
                ExitCode::from(1)
            }
        },
        // A command that writes its output itself (`ls`) meets a reader that went away as an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::from(141)
        }
        Err(e) => {
            errln!("ERROR: {}", error_line(&e));
            if e.downcast_ref::<Incomplete>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// An error and its causes on one line, each cause once: many errors end their own message with their
/// source's (`storage put NAME: Read-only file system`), which the chain then names again.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut previous = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !previous.ends_with(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        previous = text;
    }
    line
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Benchmark(a) = &cli.command {
        return commands::benchmark::run(&a.command);
    }
    let ctx = Context::new(cli.global)?;
    match cli.command {
        Command::Repository(a) => commands::repository::run(&ctx, a.command),
        Command::Snapshot(a) => commands::snapshot::run(&ctx, a.command),
        Command::Ls(a) => commands::browse::run(&ctx, a),
        Command::Restore(a) => commands::restore::run(&ctx, a),
        Command::Server(a) => commands::server::run(&ctx, a.command),
        Command::Policy(a) => commands::policy::run(&ctx, a.command),
        Command::Ui(a) => commands::ui::run(&ctx, a),
        Command::Benchmark(_) => unreachable!("handled above"),
        Command::Maintenance(a) => match a.command {
            args::MaintenanceCommand::Run(r) => commands::maintenance::run(&ctx, r),
        },
        Command::Index(a) => match a.command {
            args::IndexCommand::Rebuild { json } => commands::integrity::rebuild(&ctx, json),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::error_line;

    #[derive(Debug, thiserror::Error)]
    #[error("storage put {name}: {source}")]
    struct Put {
        name: &'static str,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_named_once() {
        let io = std::io::Error::other("Read-only file system");
        let e = anyhow::Error::new(Put { name: "p1", source: io }).context("backing up /src");
        assert_eq!(error_line(&e), "backing up /src: storage put p1: Read-only file system");
        // A cause its parent does not repeat is still named.
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_line(&e), "outer: inner");
    }
}
