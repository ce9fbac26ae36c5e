//! `cairn ui`: the desktop launcher. Starts `cairn server start --ui` as a child with one-time
//! credentials, checks that what answers at the announced address is that server, tells the person where
//! to go and how to log in, opens the browser, and stops the server when the launcher ends.
//!
//! The child stops however the launcher ends: on Ctrl-C, SIGTERM or SIGHUP (terminal closed) the launcher
//! closes the child's standard input and waits for it; if the launcher is killed outright, the kernel
//! closes that pipe and the child's `--shutdown-on-stdin` does the same. The child's output goes to a log
//! file (`$XDG_CACHE_HOME/cairn/logs/ui-server-*.log`), never its one-time password.
//!
//! Parts: [`flags`] (the child's command line), [`child`] (the process and its announcement), [`verify`]
//! (the certificate and password check), [`proxy`] (`--unix-socket`), [`session`] (what
//! `--show-credentials` reads), [`browser`].

mod browser;
mod child;
mod flags;
mod proxy;
mod session;
mod verify;

use std::fs::{self, File};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use tokio::signal::unix::{signal, SignalKind};

use crate::args::UiArgs;
use crate::commands::Context;

/// Launcher log files start with this (the UI server's task logs start with `cairn-`).
const LOG_PREFIX: &str = "ui-server-";
/// Launcher log files kept.
const KEEP_LOGS: usize = 20;

pub fn run(ctx: &Context, args: UiArgs) -> Result<()> {
    let paths = session::Paths::for_config(&ctx.config_path)?;
    if args.show_credentials {
        return session::show(&paths, &ctx.config_path);
    }
    let listen = if args.unix_socket { flags::Listen::Socket(&paths.socket) } else { flags::Listen::Loopback };
    let flags = flags::server_flags(&args.server_args, listen, &ctx.config_path, args.i_understand_insecure)?;
    if let Some(other) = session::running(&paths)? {
        bail!(
            "`cairn ui` already runs for {} (pid {}, {}); `cairn ui --show-credentials` prints how to log in",
            ctx.config_path.display(),
            other.launcher_pid,
            other.url
        );
    }
    let repo_password = ctx.password(&ctx.load_config()?)?;
    let (log, log_path) = open_log()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("cairn-ui-launcher")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Caught from here on: a signal that comes right after the announcement (a terminal closed at once)
    // still stops the server and removes the credentials, instead of being ignored (under nohup) or ending
    // the launcher with the credentials left behind, as when the handlers were installed only after it.
    let mut signals = {
        let _entered = runtime.enter();
        Signals::new()
    };
    let exe = std::env::current_exe().context("finding the cairn binary")?;
    let mut server = child::start(&exe, &flags.args, &repo_password, &log, !flags.insecure)?;
    drop(repo_password);
    let found = server.announcement.clone();
    let scheme = if flags.insecure { "http" } else { "https" };

    // Where the browser goes: the server's loopback port, or the launcher's proxy to its socket.
    let addr: SocketAddr = if args.unix_socket {
        let expected = format!("{scheme}+unix://{}", paths.socket.display());
        if found.address != expected {
            bail!("the server announced {}, not its socket {expected}", found.address);
        }
        proxy::start(&runtime, paths.socket.clone())?
    } else {
        let addr: SocketAddr = found
            .address
            .strip_prefix(&format!("{scheme}://"))
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("the server announced {:?}, not {scheme}://IP:PORT", found.address))?;
        if !addr.ip().is_loopback() {
            bail!("the server announced {addr}, which is not a loopback address");
        }
        addr
    };
    verify::check(addr, found.fingerprint.as_deref(), &flags.username, &found.password)?;

    let url = format!("{scheme}://{addr}");
    let record = session::Session {
        launcher_pid: std::process::id(),
        launcher_start: session::process_start(std::process::id()).unwrap_or_default(),
        server_pid: server.pid(),
        url: url.clone(),
        username: flags.username.clone(),
        password: found.password.clone(),
        cert_sha256: found.fingerprint.clone(),
        cert_file: found.cert_pem.as_ref().map(|_| paths.cert.clone()),
        log_file: log_path.clone(),
    };
    let written = session::write(&paths, &record, found.cert_pem.as_deref())?;
    let opened = !args.no_browser && browser::open(&format!("{url}/"));
    announce(&record, flags.insecure, opened);

    let end = runtime.block_on(wait(&mut server, &mut signals));
    let status = server.stop();
    drop(written);
    runtime.shutdown_timeout(Duration::from_millis(200));
    match end {
        End::Signal(why) => {
            say(&format!("{why}: the server stopped ({}).", describe(status)));
            Ok(())
        }
        End::ServerExited(status) => {
            bail!("the server stopped by itself ({}); its log: {}", describe(Some(status)), log_path.display())
        }
    }
}

/// Prints a line, ignoring a closed terminal (after SIGHUP there may be none).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) if s.success() => "exit 0".into(),
        Some(s) => s.to_string(),
        None => "status unknown".into(),
    }
}

/// The launcher's few lines: where to go and how to log in. The password is shown only on a terminal;
/// output that goes elsewhere (a desktop session's log) says how to get it instead.
fn announce(s: &session::Session, insecure: bool, opened: bool) {
    say(&format!("Cairn UI: {}/", s.url));
    if std::io::stdout().is_terminal() {
        say(&format!("Log in as {:?} with password {}", s.username, s.password));
    } else {
        say(&format!("Log in as {:?}; `cairn ui --show-credentials` prints the password.", s.username));
    }
    match &s.cert_sha256 {
        Some(fingerprint) => say(&format!("Self-signed certificate, SHA-256 {fingerprint}")),
        None if insecure => say("WARNING: plain HTTP (--insecure): the password and your data are not encrypted."),
        None => {}
    }
    let browser = if opened { "Opened in your browser. " } else { "" };
    say(&format!("{browser}Server log: {}. Press Ctrl-C to stop.", s.log_file.display()));
}

enum End {
    Signal(&'static str),
    ServerExited(ExitStatus),
}

/// The signals that end the launcher, caught from when this is made (inside the runtime).
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        Self {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
            hangup: signal(SignalKind::hangup()).ok(),
        }
    }
}

/// Waits for Ctrl-C, SIGTERM, SIGHUP (also one that came before), or the server exiting on its own.
async fn wait(server: &mut child::Server, signals: &mut Signals) -> End {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = next(&mut signals.interrupt) => return End::Signal("Interrupted"),
            _ = next(&mut signals.terminate) => return End::Signal("Terminated"),
            _ = next(&mut signals.hangup) => return End::Signal("Terminal closed"),
            _ = tick.tick() => {
                if let Ok(Some(status)) = server.exited() {
                    return End::ServerExited(status);
                }
            }
        }
    }
}

async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// A new log file for this run's server, 0600 (task paths and errors may be private).
fn open_log() -> Result<(File, PathBuf)> {
    let dir = cairn_transport::ui::default_log_dir().context("no log folder: set $XDG_CACHE_HOME or $HOME")?;
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    cairn_transport::ui::tasks::rotate_named(&dir, LOG_PREFIX, KEEP_LOGS - 1);
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let path = dir.join(format!("{LOG_PREFIX}{stamp}-{}.log", std::process::id()));
    let file = fs::OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    Ok((file, path))
}
