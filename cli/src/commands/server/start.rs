//! `cairn server start`: sets up the TLS identity, prints the lines a launcher parses, and runs the QUIC
//! repository server and/or the HTTPS UI server until interrupted (or, with --shutdown-on-stdin, until
//! standard input closes).
//!
//! Output on stderr, in this order, each on its own line:
//! `SERVER PASSWORD: <64 hex>` (UI with --random-password), `SERVER CERT SHA256: <64 hex>`,
//! `SERVER CERTIFICATE: <base64 PEM>` (with --tls-print-server-cert), `SERVER ADDRESS: https://IP:PORT`
//! (UI), `SERVER ADDRESS: quic://IP:PORT` (repository server).

use std::net::SocketAddr;

use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use cairn_transport::server;
use cairn_transport::tls::ServerIdentity;

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

/// The server's certificate: loaded from files, or generated (and saved when file names are given).
pub fn identity(args: &ServerStartArgs, listen: &SocketAddr) -> Result<ServerIdentity> {
    match (&args.tls_cert_file, &args.tls_key_file, args.tls_generate_cert) {
        (Some(cert), Some(key), false) => Ok(ServerIdentity::load(cert, key)?),
        (cert, key, true) => {
            let mut names = args.tls_generate_cert_name.clone();
            names.push(listen.ip().to_string());
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
    if args.ui {
        bail!("--ui: the UI server is not part of this build yet; run without --ui for the repository server");
    }
    let repo = Arc::new(ctx.open_direct()?);
    let listen = resolve(&args.address)?;
    let identity = identity(&args, &listen)?;
    eprintln!("SERVER CERT SHA256: {}", identity.fingerprint());
    if args.tls_print_server_cert {
        eprintln!("SERVER CERTIFICATE: {}", identity.pem_base64());
    }
    run_repository_server(repo, listen, &identity, args.shutdown_on_stdin)
}

/// Runs the QUIC repository server until shutdown; prints `SERVER ADDRESS: quic://IP:PORT` once bound.
pub fn run_repository_server(
    repo: Arc<cairn_engine::Repository>,
    listen: SocketAddr,
    identity: &ServerIdentity,
    shutdown_on_stdin: bool,
) -> Result<()> {
    let users = cairn_transport::users::list(&repo)?;
    if users.is_empty() {
        eprintln!(
            "No server users yet: add one with `cairn server user add USER@HOST`; logins are refused until then."
        );
    }
    server::run(repo, listen, identity, server::Shutdown { on_stdin_close: shutdown_on_stdin }, |bound| {
        eprintln!("SERVER ADDRESS: quic://{bound}");
    })?;
    eprintln!("Server stopped.");
    Ok(())
}
