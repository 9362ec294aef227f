//! What a node of a cluster serves the leader (SPEC §15), on its node address behind
//! a token of its own that only holders of the cluster's key can read (sealed in its
//! node record): the log lines of the sandboxes it runs, kept in its own log store —
//! `miren logs` through the leader merges every live node's with its own, the history
//! by time, then new lines as they come from each — and their CPU and memory, for
//! `app status`, `top`, the dashboard and `/metrics`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use miren_core::model::Node;
use miren_core::model::SandboxId;
use miren_core::runtime::{Runtime, Usage};
use miren_core::secret::SecretKey;
use miren_core::store::{Store, keys};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::api::serve::{bearer_is, serve_tcp};
use super::api::stream::{line, ndjson};
use super::logs::{Filter, LogStore, Stored};
use crate::client::{Client, Endpoint, Located, Source};

/// The path nodes serve their lines on.
const PATH: &str = "/v1/node/logs";
/// The path nodes serve their sandboxes' usage on.
const USAGE: &str = "/v1/node/usage";
/// The path (then a sandbox's id) nodes run commands in their sandboxes on.
const EXEC: &str = "/v1/node/exec/";

/// Where this node serves its lines, and with which token.
pub struct Served {
    pub addr: SocketAddr,
    pub token: String,
}

/// Serves `logs` and what `runtime` measures on `ip` (a free port) until the task is
/// dropped.
pub async fn serve(
    ip: IpAddr,
    logs: LogStore,
    runtime: Arc<dyn Runtime>,
) -> anyhow::Result<(Served, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .with_context(|| format!("listening on {ip} for the leader's reads of this node"))?;
    let addr = listener.local_addr()?;
    let token = super::random_hex().context("reading /dev/urandom for a token")?;
    let usage = Router::new()
        .route(USAGE, get(usage))
        .route(&format!("{EXEC}{{id}}"), get(exec))
        .with_state(runtime);
    let app = Router::new()
        .route(PATH, get(read))
        .with_state(logs)
        .merge(usage)
        .layer(middleware::from_fn_with_state(
            Arc::new(token.clone()),
            auth,
        ));
    let task = tokio::spawn(serve_tcp(listener, app));
    Ok((Served { addr, token }, task))
}

async fn auth(State(token): State<Arc<String>>, req: Request, next: Next) -> Response {
    if !bearer_is(&req, &token) {
        return (StatusCode::UNAUTHORIZED, "a node's lines need its token\n").into_response();
    }
    next.run(req).await
}

/// What a read asks for, as the leader passes it on.
#[derive(Deserialize, Default)]
struct NodeQuery {
    app: Option<String>,
    service: Option<String>,
    sandbox: Option<String>,
    since: Option<u64>,
    limit: Option<usize>,
    #[serde(default)]
    follow: bool,
}

async fn read(State(logs): State<LogStore>, Query(q): Query<NodeQuery>) -> Response {
    let filter = Filter {
        app: q.app,
        service: q.service,
        sandbox: q.sandbox,
        since: q.since,
    };
    let limit = q.limit.unwrap_or(usize::MAX);
    // Subscribed before reading, so nothing falls between history and live.
    let live = logs.subscribe();
    match logs.read(filter.clone(), limit).await {
        Ok(history) => lines(live, history, limit, filter, q.follow, Vec::new()),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading lines: {e}\n"),
        )
            .into_response(),
    }
}

/// Runs a command in a sandbox of this node, over the attach protocol (the leader
/// passes its caller's connection through).
async fn exec(
    State(runtime): State<Arc<dyn Runtime>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(q): Query<super::api::upgrade::SpecQuery>,
    req: Request,
) -> Response {
    let spec = match super::api::upgrade::spec(&q) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let Ok(id) = id.parse::<SandboxId>() else {
        return (StatusCode::BAD_REQUEST, "not a sandbox id\n").into_response();
    };
    let upgraded = super::api::upgrade::upgrade(spec, req, move |attach| {
        Box::pin(async move { runtime.exec(&id, attach).await.map_err(|e| e.to_string()) })
    });
    match upgraded {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn usage(State(runtime): State<Arc<dyn Runtime>>) -> Response {
    match runtime.usage().await {
        Ok(u) => axum::Json(u).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("measuring: {e}\n"),
        )
            .into_response(),
    }
}

/// Another live node whose lines and usage a read merges.
pub struct Peer {
    name: String,
    client: Client,
    addr: String,
    token: String,
}

/// The other live nodes of the cluster that serve their lines (none outside one).
pub async fn peers(store: &dyn Store, key: &SecretKey, me: &str) -> Vec<Peer> {
    let (Ok((records, _)), Ok((alive, _))) =
        (store.list(keys::NODES).await, store.list(keys::ALIVE).await)
    else {
        tracing::warn!("reading the cluster's nodes: their lines are left out");
        return Vec::new();
    };
    let alive: std::collections::BTreeSet<&str> = alive
        .iter()
        .filter_map(|(k, _)| k.strip_prefix(keys::ALIVE))
        .collect();
    let mut out = Vec::new();
    for (k, v) in &records {
        let Ok(node) = keys::decode::<Node>(k, &v.value) else {
            continue;
        };
        if node.name == me || !alive.contains(node.name.as_str()) {
            continue;
        }
        let (Some(addr), Some(sealed)) = (node.logs, node.logs_token) else {
            continue;
        };
        let Ok(token) = key.open("a node's log token", &sealed) else {
            tracing::warn!(
                "node `{}`'s log token does not open with this node's key",
                node.name
            );
            continue;
        };
        let token = String::from_utf8_lossy(&token).into_owned();
        out.push(Peer {
            name: node.name,
            client: Client::new(Located {
                endpoint: Endpoint::Tcp {
                    authority: addr.clone(),
                    token: Some(token.clone()),
                },
                source: Source::Flag,
                passed_over: Vec::new(),
            }),
            addr,
            token,
        });
    }
    out
}

impl Peer {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection to it upgraded to the attach protocol, running `spec` (the
    /// attach spec as the caller sent it) in its sandbox `id`; the caller's frames go
    /// through it unchanged.
    pub async fn open_exec(&self, id: &SandboxId, spec: &str) -> std::io::Result<TcpStream> {
        let mut conn = TcpStream::connect(&self.addr).await?;
        let path = crate::client::with_query(&format!("{EXEC}{id}"), &[("spec", Some(spec))]);
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: upgrade\r\nUpgrade: {}\r\n\r\n",
            self.addr,
            self.token,
            crate::frames::PROTOCOL
        );
        conn.write_all(head.as_bytes()).await?;
        // The answer's head, a byte at a time: what follows it is the protocol's.
        let mut got = Vec::new();
        while !got.ends_with(b"\r\n\r\n") {
            if got.len() > 16 * 1024 {
                return Err(std::io::Error::other("an answer head too long"));
            }
            let mut b = [0u8; 1];
            if conn.read(&mut b).await? == 0 {
                return Err(std::io::Error::other("the node closed the connection"));
            }
            got.push(b[0]);
        }
        let head = String::from_utf8_lossy(&got);
        if !head.starts_with("HTTP/1.1 101") {
            let status = head.lines().next().unwrap_or_default().to_string();
            return Err(std::io::Error::other(format!(
                "node `{}` answered {status}",
                self.name
            )));
        }
        Ok(conn)
    }

    fn path(filter: &Filter, limit: usize, follow: bool) -> String {
        let since = filter.since.map(|s| s.to_string());
        let limit = (limit != usize::MAX).then(|| limit.to_string());
        crate::client::with_query(
            PATH,
            &[
                ("app", filter.app.as_deref()),
                ("service", filter.service.as_deref()),
                ("sandbox", filter.sandbox.as_deref()),
                ("since", since.as_deref()),
                ("limit", limit.as_deref()),
                ("follow", follow.then_some("true")),
            ],
        )
    }

    /// What its sandboxes use now.
    pub async fn usage(&self) -> Vec<Usage> {
        match self.client.node_usage(USAGE).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("measuring node `{}`'s sandboxes: {e}", self.name);
                Vec::new()
            }
        }
    }

    /// Its lines matching `filter`, the last `limit`.
    async fn history(&self, filter: &Filter, limit: usize) -> Vec<Stored> {
        let mut got = Vec::new();
        let read = self
            .client
            .node_logs(&Self::path(filter, limit, false), |s| {
                got.push(s);
                true
            })
            .await;
        if let Err(e) = read {
            tracing::warn!("reading node `{}`'s lines: {e}", self.name);
        }
        got
    }

    /// Its new lines matching `filter`, to `tx`, until either side goes.
    fn follow(self, filter: Filter, tx: mpsc::Sender<Vec<u8>>) {
        let (ltx, mut lrx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(l) = lrx.recv().await {
                if tx.send(l).await.is_err() {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            let path = Self::path(&filter, 0, true);
            let read = self
                .client
                .node_logs(&path, |s| ltx.send(line(&s)).is_ok())
                .await;
            if let Err(e) = read {
                tracing::warn!("following node `{}`'s lines: {e}", self.name);
            }
        });
    }
}

/// A response streaming `history` (this node's last `limit` lines, oldest first),
/// the peers' lines merged in by time, then with `follow` new lines as they come,
/// from `live` (subscribed before the history was read: a line in both is skipped by
/// its sequence number) and from the peers.
pub fn lines(
    mut live: tokio::sync::broadcast::Receiver<Arc<Stored>>,
    mut history: Vec<Stored>,
    limit: usize,
    filter: Filter,
    follow: bool,
    peers: Vec<Peer>,
) -> Response {
    let mut last_seq = history.last().map_or(0, |s| s.seq);
    // Bounded: a client that reads slowly slows the sender, never the server's memory.
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        if !peers.is_empty() {
            for p in &peers {
                history.extend(p.history(&filter, limit).await);
            }
            history.sort_by_key(|s| s.record.time);
            if history.len() > limit {
                history.drain(..history.len() - limit);
            }
        }
        for s in history {
            if tx.send(line(&s)).await.is_err() {
                return;
            }
        }
        if !follow {
            return;
        }
        for p in peers {
            p.follow(filter.clone(), tx.clone());
        }
        loop {
            match live.recv().await {
                Ok(s) if s.seq > last_seq && filter.matches(&s.record) => {
                    last_seq = s.seq;
                    if tx.send(line(s.as_ref())).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });
    ndjson(tokio_stream::wrappers::ReceiverStream::new(rx))
}
