//! The apps the tests deploy, run from this same test binary: a sandbox's command is
//! `exec <this binary> helper --exact …` with `MIREN_TEST_ROLE` saying what to be.
//! Starting takes milliseconds and needs nothing installed.

use std::io::Write;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The command that runs `role` as a sandbox.
pub fn command(role: &str) -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    format!(
        "MIREN_TEST_ROLE={role} exec '{}' helper --exact --nocapture --test-threads=1 --quiet",
        exe.display()
    )
}

/// Runs the role named by `MIREN_TEST_ROLE`, if any. Returns when the role ends.
pub fn run() {
    // `TEST_ROLE` when app.toml sets it (`MIREN_` names are the platform's).
    let Ok(role) = std::env::var("MIREN_TEST_ROLE").or_else(|_| std::env::var("TEST_ROLE")) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let code = rt.block_on(async {
        match role.as_str() {
            "http" => serve(Reply::Http).await,
            "counter" => serve(Reply::Counter).await,
            "exit" => {
                eprintln!("boom: missing DATABASE_URL");
                3
            }
            "worker" => {
                for i in 0.. {
                    println!("tick {i}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                0
            }
            "server" => super::server::run().await,
            // Finishes its work on SIGTERM (a short flush), writes `clean` to
            // $TEST_MARKFILE, and exits 0.
            "graceful" => {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .unwrap_or_else(|e| panic!("{e}"));
                println!("ready");
                term.recv().await;
                tokio::time::sleep(Duration::from_millis(400)).await;
                let mark = std::env::var("TEST_MARKFILE").unwrap_or_default();
                std::fs::write(mark, "clean").unwrap_or_else(|e| panic!("{e}"));
                0
            }
            // Catches SIGTERM and carries on: only SIGKILL ends it.
            "stubborn" => {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .unwrap_or_else(|e| panic!("{e}"));
                println!("ready");
                loop {
                    term.recv().await;
                    println!("ignoring SIGTERM");
                }
            }
            other => panic!("unknown role {other}"),
        }
    });
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

#[derive(Clone, Copy)]
enum Reply {
    /// HTTP: `<service> <pid> [<upstream's line>]`.
    Http,
    /// Plain TCP: increments `$MIREN_DISK_DATA/count` and writes it.
    Counter,
}

/// Listens on `$PORT` (after `STARTUP_MS`); on SIGTERM keeps serving 200 ms, then exits.
async fn serve(reply: Reply) -> i32 {
    if let Some(ms) = std::env::var("STARTUP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    // `LISTEN=host:port` in the command: an app that binds where its command says.
    let addr = match std::env::var("LISTEN") {
        Ok(a) => a,
        Err(_) => {
            let port: u16 = std::env::var("PORT")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no PORT"));
            format!("127.0.0.1:{port}")
        }
    };
    let listener = TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let port = listener.local_addr().map_or(0, |a| a.port());
    println!("listening on {port}");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .unwrap_or_else(|e| panic!("signal: {e}"));
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let until =
            deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            Ok((conn, _)) = listener.accept() => {
                tokio::spawn(handle(conn, reply));
            }
            _ = term.recv(), if deadline.is_none() => {
                println!("SIGTERM: draining");
                deadline = Some(tokio::time::Instant::now() + Duration::from_millis(200));
            }
            _ = tokio::time::sleep_until(until) => return 0,
        }
    }
}

async fn handle(mut conn: TcpStream, reply: Reply) {
    let service = std::env::var("MIREN_SERVICE").unwrap_or_default();
    let pid = std::process::id();
    match reply {
        Reply::Http => {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            // `/health`: 503 while the file `$HEALTH_FLAG` names exists.
            if buf.starts_with(b"GET /health ") {
                let sick =
                    std::env::var("HEALTH_FLAG").is_ok_and(|f| std::path::Path::new(&f).exists());
                let resp = if sick {
                    "HTTP/1.0 503 Unavailable\r\nContent-Length: 4\r\n\r\nsick"
                } else {
                    "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
                };
                let _ = conn.write_all(resp.as_bytes()).await;
                return;
            }
            let mut body = format!("{service} {pid}");
            if let Ok(up) = std::env::var("UPSTREAM") {
                body.push(' ');
                body.push_str(
                    &read_line_from(&up)
                        .await
                        .unwrap_or_else(|e| format!("upstream error: {e}")),
                );
            }
            let resp = format!(
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
        }
        Reply::Counter => {
            // Count only clients that ask: a readiness probe connects and says nothing.
            let mut ask = [0u8; 4];
            if conn.read_exact(&mut ask).await.is_err() || &ask != b"inc\n" {
                return;
            }
            let dir = std::env::var("MIREN_DISK_DATA").unwrap_or_else(|_| ".".into());
            let file = std::path::Path::new(&dir).join("count");
            let n: u64 = std::fs::read_to_string(&file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
                + 1;
            let _ = std::fs::write(&file, n.to_string());
            let _ = conn
                .write_all(format!("{service} {pid} {n}\n").as_bytes())
                .await;
        }
    }
    let _ = conn.shutdown().await;
}

/// Connects to a counter at `addr`, asks, and reads the answer.
pub async fn read_line_from(addr: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"inc\n").await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    Ok(out.trim_end().to_string())
}

/// One HTTP/1.0 GET; the body.
pub async fn get(addr: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n").await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    match out.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.0 200") => Ok(body.to_string()),
        _ => Err(std::io::Error::other(format!("bad response: {out:?}"))),
    }
}
