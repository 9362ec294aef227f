//! `miren logs`: `<S|E> <YYYY-MM-DD HH:MM:SS> [<service>/<sandbox-suffix>] <line>`.

use hyper::Method;
use miren_core::runtime::{LogRecord, Stream};

use super::q;
use crate::Exit;
use crate::cli::{Format, LogsArgs};
use crate::client::{Client, ClientError};
use crate::server::logs::Stored;

/// One line as SPEC §9 prints it.
pub fn format_line(r: &LogRecord) -> String {
    let s = match r.stream {
        Stream::Stdout => 'S',
        Stream::Stderr => 'E',
    };
    format!(
        "{s} {} [{}/{}] {}",
        crate::table::timestamp(r.time),
        r.service,
        r.sandbox.short(),
        r.line
    )
}

pub async fn run(c: &Client, args: &LogsArgs, format: Format) -> Result<Exit, ClientError> {
    let mut query = Vec::new();
    if let Some(a) = &args.app {
        query.push(format!("app={}", q(a)));
    }
    if let Some(s) = &args.service {
        query.push(format!("service={}", q(s)));
    }
    if let Some(s) = &args.sandbox {
        query.push(format!("sandbox={}", q(s)));
    }
    if let Some(l) = &args.last {
        query.push(format!("last={}", q(l)));
    }
    if args.follow {
        query.push("follow=true".into());
    }
    let path = format!("/v1/logs?{}", query.join("&"));
    use std::io::Write;
    let mut failed = None;
    c.stream::<(), Stored>(Method::GET, &path, None, |s| {
        let mut out = std::io::stdout().lock();
        let r = match format {
            Format::Json => serde_json::to_string(&s)
                .map(|j| writeln!(out, "{j}"))
                .unwrap_or(Ok(())),
            Format::Table => writeln!(out, "{}", format_line(&s.record)),
        }
        .and_then(|()| out.flush());
        if let Err(e) = r {
            failed = Some(e);
            return false;
        }
        true
    })
    .await?;
    match failed {
        // `miren logs | head`: the reader left.
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Ok),
        Some(e) => Err(ClientError::Protocol(e.to_string())),
        None => Ok(Exit::Ok),
    }
}
