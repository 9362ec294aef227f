//! `miren up [DIR]`: one process does it all. An embedded server keeps its state in
//! `DIR/.miren/data`, deploys DIR, routes every host to it, prints the URL and streams
//! the app's logs; Ctrl-C stops every sandbox and exits 0.

use std::io::Write;
use std::path::Path;

use miren_core::artifact::LOCAL_DATA_DIR;
use miren_core::controller::DeployRequest;
use miren_core::model::{Route, SourceInfo, VersionState};

use super::deploy::{check_locally, git_commit, pack};
use super::logs::format_line;
use super::server::{RESOLV_CONF, init_tracing, raise_open_files_limit, stop_signal};
use crate::Exit;
use crate::cli::{ColorChoice, UpArgs};
use crate::client::ClientError;
use crate::server::rollout::{Rollout, Start};
use crate::server::{Options, Server, socket_in};

pub async fn run(args: UpArgs, color: ColorChoice) -> anyhow::Result<Exit> {
    let _log = init_tracing("warn")?;
    raise_open_files_limit();
    let said = |e: ClientError| {
        eprintln!("error: {e}");
        Ok(match e {
            ClientError::Usage(_) => Exit::Usage,
            _ => Exit::Failed,
        })
    };
    let dir = match super::deploy::app_dir(args.dir.as_deref()) {
        Ok(d) => d,
        Err(e) => return said(e),
    };
    let dir = match dir.canonicalize() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {}: {e}", dir.display());
            return Ok(Exit::Usage);
        }
    };
    let (_, resolved) = match check_locally(&dir, color) {
        Ok(x) => x,
        Err(e) => return said(e),
    };
    let app = resolved.name.clone();
    let data_dir = dir.join(LOCAL_DATA_DIR);
    std::fs::create_dir_all(&data_dir)?;
    // Keep git (and anything honouring .gitignore) out of it.
    let _ = std::fs::write(data_dir.join(".gitignore"), "*\n");
    let mut stop = tokio::spawn(stop_signal());
    let socket = socket_in(&data_dir);
    let server = match Server::start(Options {
        api_socket: socket.clone(),
        data_dir,
        runtime: args.runtime,
        http_addr: args.http_addr,
        api_addr: None,
        dns_addr: args.dns_addr,
        dns_upstream: miren_dns::forward::system_resolver(Path::new(RESOLV_CONF)),
        sandbox_user: None,
        trust_forwarded_from: Vec::new(),
        cluster: None,
        node_addr: None,
        metrics_addr: None,
        ui: crate::server::UiListen::Off,
    })
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(Exit::Failed);
        }
    };

    // The app's output, as it comes.
    let mut live = server.logs.subscribe();
    let printer = tokio::spawn(async move {
        loop {
            match live.recv().await {
                Ok(s) => {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", format_line(&s.record));
                    let _ = out.flush();
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });

    eprintln!(
        "API on {}: miren commands run in {} find it; elsewhere: export MIREN_SERVER={}",
        socket.display(),
        dir.display(),
        socket.display()
    );
    eprintln!("deploying {app} from {}", dir.display());
    // The same rollout the API runs for `miren deploy`.
    let outcome = async {
        let bytes = pack(&dir, &resolved.include).await?;
        let artifacts = server.artifacts.clone();
        let art = tokio::task::spawn_blocking(move || artifacts.put(&bytes)).await??;
        let request = DeployRequest {
            config: resolved,
            artifact_digest: art.digest,
            source: SourceInfo {
                git_commit: git_commit(&dir).await,
            },
        };
        let rollout = Rollout::start(
            &server.controller,
            &server.visible,
            Start::Deploy(Box::new(request)),
        )
        .await?;
        // Routed as soon as the app exists: a request during the deploy hears "still
        // deploying", not 404.
        let route = Route {
            host: "*".to_string(),
            app: app.clone(),
            default: true,
        };
        server.controller.put_route(route).await?;
        let v = rollout.follow(true, |_| {}).await;
        v.ok_or_else(|| anyhow::anyhow!("the server stopped before the deploy ended"))
    };
    let version = tokio::select! {
        v = outcome => v,
        _ = &mut stop => {
            eprintln!("interrupted");
            server.shutdown().await?;
            return Ok(Exit::Ok);
        }
    };
    let ok = match version {
        Ok(v) if v.state == VersionState::Active => true,
        Ok(v) => {
            eprintln!(
                "error: {} failed: {}",
                v.id,
                v.failure.as_deref().unwrap_or("no reason given")
            );
            false
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            false
        }
    };
    if !ok {
        printer.abort();
        server.shutdown().await?;
        return Ok(Exit::Failed);
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{app} is up at http://{}/ (Ctrl-C stops it)",
            server.http_addr
        )?;
        out.flush()?;
    }
    let _ = stop.await;
    eprintln!("stopping {app}");
    server.shutdown().await?;
    printer.abort();
    Ok(Exit::Ok)
}
