//! With `--unix-socket`, the server opens no TCP port, but a browser can only reach TCP. The launcher
//! listens on a loopback port of its own and copies bytes both ways between each connection and the
//! server's socket; TLS stays end to end between the browser and the server, so the proxy sees only
//! ciphertext. The port exists only while the launcher runs: it is closed with the launcher's runtime.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use tokio::net::{TcpListener, UnixStream};

/// Binds a free loopback port and forwards its connections to `socket` until the runtime stops.
pub fn start(runtime: &tokio::runtime::Runtime, socket: PathBuf) -> Result<SocketAddr> {
    let listener = runtime
        .block_on(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .context("opening the loopback port for the browser")?;
    let addr = listener.local_addr()?;
    runtime.spawn(async move {
        loop {
            let mut tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!("proxy accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let socket = socket.clone();
            tokio::spawn(async move {
                match UnixStream::connect(&socket).await {
                    Ok(mut server) => {
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut server).await;
                    }
                    Err(e) => tracing::warn!("proxy: cannot reach {}: {e}", socket.display()),
                }
            });
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn bytes_flow_both_ways_and_the_port_closes_with_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("echo.sock");
        let echo = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for mut conn in echo.incoming().map_while(Result::ok) {
                let mut buf = [0u8; 5];
                if conn.read_exact(&mut buf).is_ok() {
                    buf.reverse();
                    let _ = conn.write_all(&buf);
                }
            }
        });
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let addr = start(&runtime, path).unwrap();
        assert!(addr.ip().is_loopback());
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        tcp.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"olleh");
        runtime.shutdown_timeout(std::time::Duration::from_millis(100));
        assert!(std::net::TcpStream::connect(addr).is_err(), "the port is gone with the launcher's runtime");
    }
}
