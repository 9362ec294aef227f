//! Miren's service DNS (SPEC §7): the authoritative server for `app.miren.`, so a
//! sandbox reaches the other services of its app as `<service>.app.miren`.
//!
//! Who asks decides what a name means: a query's source address is looked up among the
//! app's sandboxes, so `postgres.app.miren` is each app's own database, another app's
//! names are refused to it, and out-of-zone names are forwarded only for sandboxes. The
//! zone is a projection of the store ([`zone::projection`]) that `miren_core`'s
//! reflector keeps current: a sandbox that drains or stops is gone from answers as
//! soon as the store says so, and [`Dns::progress`] tells when a change is in.
//!
//! # Layout
//! - [`zone`]: plain data: per app, each service's serving instances and the addresses
//!   of its sandboxes (who asks); `zone::projection` builds it from the store.
//! - [`answer`]: all of SPEC §7 as one pure function (zone, name, type, source).
//! - `config`: the server's options ([`DnsConfig`]) and app networks ([`AppSubnet`]).
//! - `handler`: one request answered with hickory-server's message builder.
//! - `udp`: the UDP loop, with its answer cache: a question asked before is answered
//!   from the bytes sent then, without decoding it.
//! - `server`: the sockets: the UDP loop, and hickory-server's TCP listener.
//! - [`forward`]: out-of-zone questions from sandboxes, sent upstream.
//! - [`stats`]: queries answered, by response code (`/metrics`).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use miren_core::store::MemoryStore;
//! use miren_dns::{Dns, DnsConfig};
//!
//! let store = Arc::new(MemoryStore::new());
//! let dns = Dns::bind("127.0.0.1:5353".parse().unwrap(), store, DnsConfig::default()).await?;
//! println!("DNS on {}", dns.local_addr());
//! tokio::spawn(dns.run());
//! # Ok(()) }
//! ```

pub mod answer;
mod config;
pub mod forward;
mod handler;
mod server;
pub mod stats;
mod udp;
pub mod zone;

pub use config::{AppSubnet, DnsConfig};
pub use server::{Dns, Listeners};

/// The DNS wire types (hickory-proto), for clients and tests of this server.
pub use hickory_server::proto;
