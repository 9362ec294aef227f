//! miren-dns alone, for the side-by-side bench with unbound: one tokio thread (like
//! unbound's `num-threads: 1`), a zone of `<names>` apps each with one ready `web`
//! instance, so `web.app<i>.app.miren` has one A record (10.<i/256>.<i%256>.2) — the
//! same data the bench gives unbound as `local-data`.
//!
//! `dns-standalone <listen addr> [names]`

use std::sync::Arc;

use miren_core::model::SandboxStatus;
use miren_core::store::keys;
use miren_core::store::{MemoryStore, Op, Store};
use miren_core::testing::{pool, sandbox};

// The allocator the `miren` binary uses too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args
        .next()
        .ok_or("usage: dns-standalone <listen> [names]")?;
    let names: u32 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(100);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let store = Arc::new(MemoryStore::new());
        let mut ops = vec![];
        for i in 0..names {
            let app = format!("app{i}");
            let p = pool(&app, "web");
            let addr = format!("10.{}.{}.2:8080", i / 256, i % 256);
            let mut s = sandbox(&app, "web", Some(&addr), SandboxStatus::Running);
            s.pool = p.id.clone();
            ops.push(Op::put(keys::pool(&app, &p.id), keys::encode(&p)));
            ops.push(Op::put(keys::sandbox(&app, &s.id), keys::encode(&s)));
        }
        store.txn(ops).await?;
        let dns =
            miren_dns::Dns::bind(listen.parse()?, store, miren_dns::DnsConfig::default()).await?;
        println!("listening on {}", dns.local_addr());
        dns.run().await;
        Ok(())
    })
}
