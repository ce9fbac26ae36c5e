//! `cairn server start`: sets up the TLS identity, prints the lines a launcher parses, and runs the QUIC
//! repository server and/or the HTTPS UI server until interrupted (or, with --shutdown-on-stdin, until
//! standard input closes).
//!
//! Output on stderr, in this order, each on its own line:
//! `SERVER PASSWORD: <64 hex>` (UI with --random-password), `SERVER CERT SHA256: <64 hex>`,
//! `SERVER CERTIFICATE: <base64 PEM>` (with --tls-print-server-cert), `SERVER ADDRESS: https://IP:PORT`
//! (UI), `SERVER ADDRESS: quic://IP:PORT` (repository server).
//!
//! `--address unix:/path/to/socket` serves the UI on a Unix-domain socket (mode 0600, in a directory only
//! this user can enter) and opens no network port: the address line is then
//! `SERVER ADDRESS: https+unix:///path/to/socket`, and the repository server (which needs UDP) does not run.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use cairn_engine::policy::parse_duration;
use cairn_engine::Repository;
use cairn_transport::server;
use cairn_transport::tls::ServerIdentity;
use cairn_transport::ui::{self, ListenAddress, LocalIdentity, UiConfig};

use crate::args::ServerStartArgs;
use crate::commands::Context;

/// Resolves `HOST:PORT` (e.g. `localhost:0`) to one socket address, preferring IPv4.
pub fn resolve(address: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let mut addrs: Vec<SocketAddr> =
        address.to_socket_addrs().with_context(|| format!("invalid --address {address:?}"))?.collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs.into_iter().next().with_context(|| format!("--address {address:?} resolves to nothing"))
}

/// Parses `--address`: `unix:PATH` (a Unix socket, made absolute), else `HOST:PORT`.
fn listen_address(address: &str) -> Result<ListenAddress> {
    match address.strip_prefix("unix:") {
        Some("") => bail!("--address unix: needs a socket path, e.g. unix:/run/user/1000/cairn/ui.sock"),
        Some(path) => Ok(ListenAddress::Unix(
            std::path::absolute(PathBuf::from(path)).with_context(|| format!("invalid socket path {path:?}"))?,
        )),
        None => Ok(ListenAddress::Tcp(resolve(address)?)),
    }
}

/// The IP a generated certificate names: the listening one, or loopback for a Unix socket (which a
/// launcher exposes to the browser through a loopback port).
fn certificate_ip(listen: &ListenAddress) -> IpAddr {
    match listen {
        ListenAddress::Tcp(addr) => addr.ip(),
        ListenAddress::Unix(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

/// The server's certificate: loaded from files, or generated (and saved when file names are given).
pub fn identity(args: &ServerStartArgs, ip: IpAddr) -> Result<ServerIdentity> {
    match (&args.tls_cert_file, &args.tls_key_file, args.tls_generate_cert) {
        (Some(cert), Some(key), false) => Ok(ServerIdentity::load(cert, key)?),
        (cert, key, true) => {
            let mut names = args.tls_generate_cert_name.clone();
            names.push(ip.to_string());
            let id = ServerIdentity::generate(&names)?;
            match (cert, key) {
                (Some(cert), Some(key)) => id.save(cert, key)?,
                (None, None) => {}
                _ => bail!("--tls-cert-file and --tls-key-file go together"),
            }
            Ok(id)
        }
        _ => bail!("TLS needs --tls-cert-file and --tls-key-file, or --tls-generate-cert"),
    }
}

pub fn run(ctx: &Context, args: ServerStartArgs) -> Result<()> {
    crate::heap::bound_for_server();
    let listen = listen_address(&args.address)?;
    if args.ui {
        return run_ui(ctx, &args, listen);
    }
    let ListenAddress::Tcp(listen) = listen else {
        bail!("the repository server listens on UDP: a unix: address serves only the UI server (--ui)");
    };
    let repo = Arc::new(ctx.open_direct()?);
    let identity = identity(&args, listen.ip())?;
    print_identity(&args, &identity);
    if cairn_transport::users::list(&repo)?.is_empty() {
        errln!("No server users yet: add one with `cairn server user add USER@HOST`; logins are refused until then.");
    }
    let shutdown = server::Shutdown { on_stdin_close: args.shutdown_on_stdin };
    server::run(repo, listen, &identity, shutdown, |bound| errln!("SERVER ADDRESS: quic://{bound}"))?;
    errln!("Server stopped.");
    Ok(())
}

fn print_identity(args: &ServerStartArgs, identity: &ServerIdentity) {
    errln!("SERVER CERT SHA256: {}", identity.fingerprint());
    if args.tls_print_server_cert {
        errln!("SERVER CERTIFICATE: {}", identity.pem_base64());
    }
}

/// The UI server (and, when the repository has users, the repository server beside it).
fn run_ui(ctx: &Context, args: &ServerStartArgs, listen: ListenAddress) -> Result<()> {
    let password = match (&args.server_password, args.random_password) {
        (_, true) => ui::auth::random_password()?,
        (Some(p), false) => p.clone(),
        (None, false) => {
            bail!("the UI server needs --server-password (or $CAIRN_SERVER_PASSWORD) or --random-password")
        }
    };
    let plain_http = args.insecure && !args.tls_generate_cert && args.tls_cert_file.is_none();
    let identity = if plain_http { None } else { Some(identity(args, certificate_ip(&listen))?) };
    let maintenance = parse_duration(&args.maintenance_interval)?;
    let (config, repo) = (ctx.load_config()?, ctx.open_direct()?);
    let repo = Arc::new(repo);
    let server = ui::bind(
        &listen,
        identity.as_ref(),
        UiConfig {
            repo: repo.clone(),
            location: config.storage.describe(),
            identity: LocalIdentity { user: config.username(), host: config.hostname() },
            username: args.server_username.clone(),
            password: password.clone(),
            cookie_signing_key: args.auth_cookie_signing_key.clone(),
            maintenance_interval: (maintenance > 0).then_some(maintenance),
            log_dir: args.log_dir.clone().or_else(ui::default_log_dir),
        },
    )?;

    // The launcher reads these lines: keep their order and form.
    if args.random_password {
        errln!("SERVER PASSWORD: {password}");
    }
    if let Some(identity) = &identity {
        print_identity(args, identity);
    }
    errln!("SERVER ADDRESS: {}", server.url()?);
    if plain_http {
        errln!("WARNING: --insecure: serving the UI over plain HTTP. Anyone who can see this traffic can read");
        errln!("WARNING: the password and your data. Use it only for debugging, on this machine.");
    }
    match server.tcp_addr()? {
        Some(addr) => start_repository_server_alongside(&repo, args, identity.as_ref(), addr)?,
        None if !cairn_transport::users::list(&repo)?.is_empty() => {
            errln!("NOTE: the repository server (QUIC, over UDP) does not run beside a Unix-socket UI server");
        }
        None => {}
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cairn-ui")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime
        .block_on(server.serve(server::shutdown_signal(server::Shutdown { on_stdin_close: args.shutdown_on_stdin })));
    runtime.shutdown_timeout(Duration::from_millis(200));
    result?;
    Ok(())
}

/// When the repository has server users (the UI server alone needs none), also serves the QUIC repository server on the UI's port number
/// (over UDP), on its own thread, and prints its `SERVER ADDRESS: quic://...` line after the https one.
/// It stops with the process.
fn start_repository_server_alongside(
    repo: &Arc<Repository>,
    args: &ServerStartArgs,
    identity: Option<&ServerIdentity>,
    ui_addr: SocketAddr,
) -> Result<()> {
    if cairn_transport::users::list(repo)?.is_empty() {
        return Ok(());
    }
    let Some(identity) = identity else {
        errln!("WARNING: the repository server needs TLS; it does not run with --insecure");
        return Ok(());
    };
    let endpoint_identity = ServerIdentity::load_pem(identity.cert_pem(), &identity.key_pem())?;
    let (repo, on_stdin) = (repo.clone(), args.shutdown_on_stdin);
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("cairn-quic-server".into()).spawn(move || {
        let shutdown = server::Shutdown { on_stdin_close: on_stdin };
        if let Err(e) = server::run(repo, ui_addr, &endpoint_identity, shutdown, |bound| {
            let _ = bound_tx.send(Ok(bound));
        }) {
            let _ = bound_tx.send(Err(e.to_string()));
        }
    })?;
    match bound_rx.recv() {
        Ok(Ok(bound)) => errln!("SERVER ADDRESS: quic://{bound}"),
        Ok(Err(e)) => bail!("starting the repository server: {e}"),
        Err(_) => bail!("the repository server stopped while starting"),
    }
    Ok(())
}
