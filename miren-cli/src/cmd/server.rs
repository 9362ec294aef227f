//! `miren server`.

use std::net::SocketAddr;
use std::path::Path;

use crate::Exit;
use crate::cli::{ServerArgs, UiAddr};
use crate::server::{
    ClusterOptions, Node, Options, UiListen, access_log, default_data_dir, socket_in,
};
use anyhow::Context as _;

/// Where the host's resolver is named: the default upstream of service DNS.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Logs of the server itself (not of sandboxes) on stderr; `RUST_LOG` overrides.
/// Access lines (one per request) are batched per proxy thread and written by a thread
/// of their own (`server::access_log`), so a request never waits on stderr; what is
/// buffered is written when the returned guard is dropped. Everything else is written
/// as it happens, in order. Per-query lines of the DNS library are debug: at `info`
/// they would be two lines per query.
pub fn init_tracing(default: &str) -> anyhow::Result<access_log::Guard> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{default},hickory_server=warn,hickory_proto=warn,hickory_resolver=warn"
        ))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let is_access = |m: &tracing::Metadata<'_>| m.target() == miren_proxy::ACCESS_TARGET;
    let (access, guard) = access_log::AccessLog::new(Box::new(std::io::stderr()), ansi)
        .context("starting the access log's thread")?;
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_target(false)
                .with_filter(tracing_subscriber::filter::filter_fn(move |m| {
                    !is_access(m)
                })),
        )
        .with(access.with_filter(tracing_subscriber::filter::filter_fn(is_access)))
        .try_init();
    Ok(guard)
}

/// Raises the soft limit on open files to the hard one, as a server that holds two
/// sockets per proxied request needs (the usual soft limit, 1024, is reached at ~500
/// concurrent requests). Sandboxes inherit it. Best effort: the limit stays as it was
/// if raising fails.
pub fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!("open files limit raised from {soft} to {hard}"),
            Err(e) => tracing::warn!("open files limit stays at {soft}: {e}"),
        }
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

pub async fn run(args: ServerArgs) -> anyhow::Result<Exit> {
    let _log = init_tracing("info")?;
    raise_open_files_limit();
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let api_socket = args.api_socket.unwrap_or_else(|| socket_in(&data_dir));
    let opts = Options {
        data_dir: data_dir.clone(),
        runtime: args.runtime,
        http_addr: args.http_addr,
        api_socket: api_socket.clone(),
        api_addr: args.api_addr,
        dns_addr: Some(args.dns_addr),
        dns_upstream: args
            .dns_upstream
            .or_else(|| miren_dns::forward::system_resolver(Path::new(RESOLV_CONF)))
            .filter(|up| *up != args.dns_addr),
        sandbox_user: args.sandbox_user,
        trust_forwarded_from: args.trust_forwarded_from,
        node_addr: args.node_addr,
        metrics_addr: args.metrics_addr,
        ui: match args.ui_addr {
            None => UiListen::Default(SocketAddr::from(([127, 0, 0, 1], 8081))),
            Some(UiAddr(None)) => UiListen::Off,
            Some(UiAddr(Some(a))) => UiListen::At(a),
        },
        cluster: match args.store {
            None => None,
            Some(store) => Some(ClusterOptions {
                store,
                node: match args.node {
                    Some(n) => n,
                    None => nix::unistd::gethostname()
                        .context("naming this node (give --node NAME)")?
                        .to_string_lossy()
                        .into_owned(),
                },
            }),
        },
    };
    let opts_upstream = opts.dns_upstream;
    // Installed before anything starts, so a signal during startup still stops cleanly.
    let mut stop = tokio::spawn(stop_signal());
    let node = tokio::select! {
        n = Node::start(opts) => n,
        _ = &mut stop => return Ok(Exit::Ok),
    };
    let node = match node {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(Exit::Failed);
        }
    };
    // A node standing by in a cluster runs what is placed on it, and the rest once it
    // leads: a signal meanwhile stops what runs here.
    let leadership = tokio::select! {
        l = node.lead() => Some(l),
        _ = &mut stop => None,
    };
    let Some(leadership) = leadership else {
        tracing::info!("stopping while standing by");
        node.leave().await;
        return Ok(Exit::Ok);
    };
    let mut server = match node.serve(leadership).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(Exit::Failed);
        }
    };
    tracing::info!(
        "miren server: data in {}, API on {}{}, HTTP on http://{}, DNS on {}{}{}{}",
        data_dir.display(),
        api_socket.display(),
        server
            .api_addr
            .map(|a| format!(
                " and http://{a} (token in {})",
                data_dir.join("api-token").display()
            ))
            .unwrap_or_default(),
        server.http_addr,
        server.dns_addr.unwrap_or(args.dns_addr),
        server
            .metrics_addr
            .map(|m| format!(", metrics on http://{m}/metrics"))
            .unwrap_or_default(),
        server
            .ui_addr
            .map(|u| format!(", dashboard on http://{u} (`miren dashboard` logs in)"))
            .unwrap_or_default(),
        opts_upstream
            .map(|u| format!(" (forwarding for sandboxes to {u})"))
            .unwrap_or_default(),
    );
    if api_socket != socket_in(&default_data_dir()) {
        eprintln!(
            "clients find this server with: export MIREN_SERVER={}",
            api_socket.display()
        );
    }
    tokio::select! {
        _ = stop => {
            tracing::info!("stopping: every sandbox gets its grace period");
            server.shutdown().await?;
            Ok(Exit::Ok)
        }
        why = server.lost_leadership() => {
            tracing::error!("this node no longer leads the cluster ({why}): stopping at once");
            server.shutdown().await?;
            Ok(Exit::Failed)
        }
    }
}
