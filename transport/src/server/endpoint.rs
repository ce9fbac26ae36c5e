//! QUIC endpoint setup: TLS, ALPN, transport tuning. Measured on loopback (docs/PROTOCOL.md): 4 MiB socket
//! buffers, a path-MTU-discovery ceiling of 6500 bytes (probed, so a real 1500-byte network simply settles
//! lower) and multi-MiB windows move several times more than quinn's defaults; the windows are kept at 8 MiB so
//! they fit the per-client memory bound.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{MtuDiscoveryConfig, TransportConfig, VarInt};

use crate::protocol::ALPN;
use crate::tls::{self, PinnedVerifier, ServerIdentity, TlsError};

const SOCKET_BUFFER: usize = 4 << 20;
/// Largest UDP payload MTU discovery may reach. At most ~6500 bytes: with GSO, a batch of segments must fit
/// in 64 KiB or Linux refuses it and quinn falls back to 1200-byte packets.
const MAX_UDP_PAYLOAD: u16 = 6500;

/// Endpoint settings shared by server and client: the largest datagram either side accepts. quinn's
/// default (1472) also caps MTU discovery, so without this every connection stays at Ethernet-sized
/// packets even on loopback (measured: 1472-byte path MTU, ~4x the packets per byte).
fn endpoint_config() -> quinn::EndpointConfig {
    let mut config = quinn::EndpointConfig::default();
    config.max_udp_payload_size(MAX_UDP_PAYLOAD).expect("6500 is a valid UDP payload size");
    config
}

/// Transport settings shared by server and client.
pub fn transport_config() -> TransportConfig {
    let mut t = TransportConfig::default();
    let mut mtu = MtuDiscoveryConfig::default();
    mtu.upper_bound(MAX_UDP_PAYLOAD);
    t.mtu_discovery_config(Some(mtu))
        .max_concurrent_bidi_streams(VarInt::from_u32(256))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(4 << 20))
        .receive_window(VarInt::from_u32(8 << 20))
        .send_window(8 << 20)
        .keep_alive_interval(Some(Duration::from_secs(10)));
    if let Ok(timeout) = Duration::from_secs(60).try_into() {
        t.max_idle_timeout(Some(timeout));
    }
    t
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel may cap the sizes (net.core.rmem_max).
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A server endpoint listening on `addr` with this identity.
pub fn server_endpoint(addr: SocketAddr, identity: &ServerIdentity) -> Result<quinn::Endpoint, TlsError> {
    let crypto = tls::server_config(identity, ALPN)?;
    let quic = QuicServerConfig::try_from(crypto).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(transport_config()));
    let socket = udp_socket(addr).map_err(|e| TlsError::Config(format!("binding {addr}: {e}")))?;
    quinn::Endpoint::new(endpoint_config(), Some(config), socket, Arc::new(quinn::TokioRuntime))
        .map_err(|e| TlsError::Config(format!("binding {addr}: {e}")))
}

/// A client endpoint whose connections trust only the pinned certificate.
pub fn client_transport(verifier: Arc<PinnedVerifier>, remote: SocketAddr) -> Result<quinn::Endpoint, TlsError> {
    let crypto = tls::pinned_client_config(verifier, ALPN)?;
    let quic = QuicClientConfig::try_from(crypto).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport_config()));
    let local: SocketAddr = if remote.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("valid address");
    let socket = udp_socket(local).map_err(|e| TlsError::Config(format!("binding a client socket: {e}")))?;
    let mut endpoint = quinn::Endpoint::new(endpoint_config(), None, socket, Arc::new(quinn::TokioRuntime))
        .map_err(|e| TlsError::Config(e.to_string()))?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}
