//! How a client reaches a repository. Today that is a storage backend opened directly (standalone mode);
//! the QUIC repository server and the UI server's HTTPS API will live here too, so the CLI only ever asks
//! this crate for a connection and never deals with storage or sockets itself.

pub mod acl;
pub mod client;
pub mod connection;
pub mod protocol;
pub mod ratelimit;
pub mod server;
pub mod tls;
pub mod ui;
pub mod users;
mod wire;

pub use connection::{ConnectionConfig, ConnectionError};
