//! miren-store-etcd: the state [`Store`] of `miren-core` kept in etcd, so several
//! `miren server` nodes share one cluster state (SPEC §15). Consensus, durability and
//! failover of the state are etcd's; this crate only maps the contract onto its API:
//! the store's revision is etcd's, a key's revision is its `mod_revision`, a
//! transaction is one etcd `Txn` guarded by its compares, and watches are fed from one
//! etcd watch stream per store that resumes where it broke off.
//!
//! # Layout
//! - `address`: `etcd://HOST:PORT[,HOST:PORT…][/PREFIX]`, what `--store` takes.
//! - `store`: [`EtcdStore`], the [`Store`] implementation.
//! - `call`: one call to etcd, bounded in time, retried while it reaches no member.
//! - `txn`: a transaction's ops as an etcd `Txn`, and what a failed one found.
//! - `follow`: the watch stream, kept going across broken connections and compaction.
//! - `lease`: an etcd lease kept alive while it is held.
//! - `leader`: which node runs the controller — the holder of a leased key.
//! - `heartbeat`: a node's key on its own lease: alive while it is.
//! - [`testing`] (feature `test-util`): real etcd members on loopback, for tests.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use miren_core::store::{Op, Store};
//! let store = miren_store_etcd::EtcdStore::connect("etcd://127.0.0.1:2379".parse()?).await?;
//! store.txn(vec![Op::put("apps/shop", "{}")]).await?;
//! # Ok(()) }
//! ```
//!
//! [`Store`]: miren_core::store::Store

mod address;
mod call;
mod follow;
mod heartbeat;
mod leader;
mod lease;
mod store;
mod txn;

#[cfg(feature = "test-util")]
pub mod testing;

pub use address::{BadAddress, EtcdAddress};
pub use heartbeat::Heartbeat;
pub use leader::{LeadError, Leadership};
pub use lease::LEASE_TTL;
pub use store::{ConnectError, EtcdStore};
