//! HTTP health checks (SPEC §14), the same for every runtime: the controller checks
//! an instance's `[health] path` on the address its runtime reported. Until the first
//! healthy answer the instance stays pending (a deploy switches only to instances that
//! answer); once running, `unhealthy_after` failures in a row take it out of every
//! answer and replace it.
//!
//! A check costs one request on one kept-alive connection per instance; the first
//! check of a running instance is offset by a fraction of the interval taken from its
//! id, so a thousand instances started together don't check in lockstep.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::actor::Internal;
use crate::config::Health;
use crate::config::duration::Display;
use crate::model::SandboxId;

/// How often a pending instance is checked: it becomes ready on its first healthy
/// answer, which shouldn't wait a whole interval.
const PENDING_EVERY: Duration = Duration::from_millis(100);

/// The most of a body read to keep a connection; a longer one closes it.
const MAX_BODY: usize = 64 * 1024;

/// Checks `addr` as `health` says, sending each outcome to the controller, until
/// aborted.
pub(super) async fn watch(
    id: SandboxId,
    addr: SocketAddr,
    health: Health,
    tx: mpsc::UnboundedSender<Internal>,
) {
    let mut checker = Checker::new(addr, &health);
    let mut healthy_once = false;
    loop {
        let outcome = checker.check().await;
        let ok = outcome.is_ok();
        if tx.send(Internal::Health(id.clone(), outcome)).is_err() {
            return;
        }
        let wait = if !healthy_once && !ok {
            PENDING_EVERY
        } else if !healthy_once {
            healthy_once = true;
            // The first interval, shortened by this instance's own fraction of it.
            health.interval.mul_f64(1.0 - offset(&id))
        } else {
            health.interval
        };
        tokio::time::sleep(wait).await;
    }
}

/// A fraction in [0, 1) that is the same for an id every time.
fn offset(id: &SandboxId) -> f64 {
    let h = id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h % 1000) as f64 / 1000.0
}

/// GETs one path on one instance over a kept-alive connection.
pub struct Checker {
    addr: SocketAddr,
    path: String,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
}

impl Checker {
    /// A checker of `addr`; it connects on its first check.
    pub fn new(addr: SocketAddr, health: &Health) -> Self {
        Self {
            addr,
            path: health.path.clone(),
            timeout: health.timeout,
            conn: None,
        }
    }

    /// One check: `Ok` for a 2xx or 3xx within the timeout, else what went wrong, as
    /// `sandbox list` shows it.
    pub async fn check(&mut self) -> Result<(), String> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.once()).await {
            Ok(r) => r,
            Err(_) => {
                self.conn = None;
                Err(format!(
                    "GET {} got no answer within {}",
                    self.path,
                    Display(timeout)
                ))
            }
        }
    }

    async fn once(&mut self) -> Result<(), String> {
        // A kept-alive connection the instance closed fails at once: one fresh try.
        let reused = self.conn.is_some();
        let status = match self.request().await {
            Err(_) if reused => self.request().await,
            r => r,
        }?;
        if (200..400).contains(&status) {
            Ok(())
        } else {
            Err(format!("GET {} answered {status}", self.path))
        }
    }

    /// One request; its status, or why there was none.
    async fn request(&mut self) -> Result<u16, String> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                let s = TcpStream::connect(self.addr)
                    .await
                    .map_err(|e| format!("connecting to {}: {e}", self.addr))?;
                let _ = s.set_nodelay(true);
                self.conn.insert(BufReader::new(s))
            }
        };
        let head = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: miren-health-check\r\nAccept: */*\r\n\r\n",
            self.path, self.addr
        );
        match exchange(conn, head.as_bytes()).await {
            Ok((status, keep)) => {
                if !keep {
                    self.conn = None;
                }
                Ok(status)
            }
            Err(e) => {
                self.conn = None;
                Err(format!("GET {}: {e}", self.path))
            }
        }
    }
}

/// Writes the request, reads the answer whole; (status, whether the connection can
/// take another request).
async fn exchange(conn: &mut BufReader<TcpStream>, head: &[u8]) -> std::io::Result<(u16, bool)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    conn.get_mut().write_all(head).await?;
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        return Err(bad("the connection closed without an answer"));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("not an HTTP answer"))?;
    let (mut length, mut chunked, mut keep) = (None, false, !line.starts_with("HTTP/1.0"));
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(bad("the answer's head was cut off"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" if value == "close" => keep = false,
            "connection" if value == "keep-alive" => keep = true,
            _ => {}
        }
    }
    if chunked {
        // Read to the last chunk; a long body isn't worth keeping the connection for.
        let mut total = 0usize;
        loop {
            line.clear();
            conn.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("a bad chunk size"))?;
            total += size;
            if size == 0 || total > MAX_BODY {
                if total > MAX_BODY {
                    keep = false;
                } else {
                    line.clear();
                    conn.read_line(&mut line).await?;
                }
                break;
            }
            let mut chunk = vec![0u8; size + 2];
            conn.read_exact(&mut chunk).await?;
        }
    } else {
        match length {
            Some(n) if n <= MAX_BODY => {
                let mut body = vec![0u8; n];
                conn.read_exact(&mut body).await?;
            }
            // No length (the body runs to the close) or too long: don't reuse.
            _ if status == 204 || status == 304 => {}
            _ => keep = false,
        }
    }
    Ok((status, keep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server answering each request with `answers` in turn, on one connection
    /// while it can; how many connections it took.
    async fn server(answers: Vec<&'static str>) -> (SocketAddr, tokio::task::JoinHandle<usize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut conns = 0;
            let mut answers = answers.into_iter().peekable();
            'accept: while answers.peek().is_some() {
                let Ok((s, _)) = l.accept().await else { break };
                conns += 1;
                let mut r = BufReader::new(s);
                loop {
                    let mut line = String::new();
                    // The head: up to the blank line.
                    loop {
                        line.clear();
                        match r.read_line(&mut line).await {
                            Ok(0) | Err(_) => continue 'accept,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let Some(a) = answers.next() else {
                        return conns;
                    };
                    if r.get_mut().write_all(a.as_bytes()).await.is_err() {
                        continue 'accept;
                    }
                    if a.contains("Connection: close") {
                        continue 'accept;
                    }
                }
            }
            conns
        });
        (addr, task)
    }

    fn health() -> Health {
        Health {
            path: "/health".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            unhealthy_after: 3,
        }
    }

    #[tokio::test]
    async fn checks_share_one_connection_and_report_the_status() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let chunked = "HTTP/1.1 204 No Content\r\n\r\n";
        let bad =
            "HTTP/1.1 503 Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ndown\r\n0\r\n\r\n";
        let (addr, server) = server(vec![ok, chunked, bad, ok]).await;
        let mut c = Checker::new(addr, &health());
        assert_eq!(c.check().await, Ok(()));
        assert_eq!(c.check().await, Ok(()));
        assert_eq!(c.check().await, Err("GET /health answered 503".into()));
        assert_eq!(c.check().await, Ok(()));
        drop(c);
        assert_eq!(
            server.await.expect("server"),
            1,
            "one kept-alive connection"
        );
    }

    #[tokio::test]
    async fn a_closed_connection_is_reopened_and_silence_times_out() {
        let close = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        let (addr, _server) = server(vec![close, close]).await;
        let mut c = Checker::new(addr, &health());
        assert_eq!(c.check().await, Ok(()));
        assert_eq!(c.check().await, Ok(()));
        // Nothing listens: the error says where it tried.
        let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let dead_addr = dead.local_addr().expect("addr");
        drop(dead);
        let mut c = Checker::new(dead_addr, &health());
        let e = c.check().await.err().unwrap_or_default();
        assert!(e.starts_with(&format!("connecting to {dead_addr}")), "{e}");
        // Accepts and never answers: the timeout says so.
        let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut h = health();
        h.timeout = Duration::from_millis(200);
        let mut c = Checker::new(silent.local_addr().expect("addr"), &h);
        assert_eq!(
            c.check().await,
            Err("GET /health got no answer within 200ms".into())
        );
    }

    #[test]
    fn offsets_spread_over_the_interval() {
        let ids: Vec<SandboxId> = (0..200).map(|_| SandboxId::new("a", "web")).collect();
        let offsets: Vec<f64> = ids.iter().map(offset).collect();
        assert!(offsets.iter().all(|o| (0.0..1.0).contains(o)));
        let low = offsets.iter().filter(|o| **o < 0.5).count();
        assert!((50..150).contains(&low), "{low} of 200 in the first half");
        assert_eq!(offset(&ids[0]), offset(&ids[0]));
    }
}
