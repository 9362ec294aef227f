//! `miren logs`: `<S|E> <YYYY-MM-DD HH:MM:SS> [<service>/<sandbox-suffix>] <line>`.

use miren_core::runtime::{LogRecord, Stream};

use crate::Exit;
use crate::cli::{Format, LogsArgs};
use crate::client::{Client, ClientError, LogQuery};

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
    let app = match (&args.app, &args.sandbox) {
        (None, None) => Some(super::which(None)?),
        (a, _) => a.clone(),
    };
    let query = LogQuery {
        app: app.as_deref(),
        service: args.service.as_deref(),
        sandbox: args.sandbox.as_deref(),
        last: args.last.as_deref(),
        follow: args.follow,
    };
    use std::io::Write;
    let mut failed = None;
    c.logs(&query, |s| {
        let mut out = std::io::stdout().lock();
        let r = match format {
            Format::Json => serde_json::to_value(&s)
                .and_then(|v| serde_json::to_string(&crate::table::json_times(v)))
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
        Some(e) => Err(ClientError::Local(format!("writing the logs: {e}"))),
        None => Ok(Exit::Ok),
    }
}
