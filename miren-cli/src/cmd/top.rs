//! `miren top`: every app's traffic and instances, redrawn in place every second on a
//! terminal (the alternate screen, restored on Ctrl-C), a frame after another when
//! piped, or a JSON snapshot per line with `--format json`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::status_view;
use crate::Exit;
use crate::api::AppStatus;
use crate::cli::{Format, TopArgs};
use crate::client::{Client, ClientError};
use crate::table::render;

/// Between frames.
const EVERY: Duration = Duration::from_secs(1);

pub async fn run(c: &Client, args: &TopArgs, format: Format) -> Result<Exit, ClientError> {
    let screen = format != Format::Json && std::io::stdout().is_terminal();
    let _screen = screen.then(Screen::enter).transpose()?;
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Listening from now on: a signal that comes while a frame is read or drawn is
    // kept for the next wait, never lost.
    let listen = |kind| {
        tokio::signal::unix::signal(kind)
            .map_err(|e| ClientError::Local(format!("listening for signals: {e}")))
    };
    let mut interrupt = listen(tokio::signal::unix::SignalKind::interrupt())?;
    let mut terminate = listen(tokio::signal::unix::SignalKind::terminate())?;
    let mut frames = 0u64;
    loop {
        let apps = tokio::select! {
            apps = async {
                tick.tick().await;
                c.statuses().await
            } => apps?,
            _ = interrupt.recv() => return Ok(Exit::Ok),
            _ = terminate.recv() => return Ok(Exit::Ok),
        };
        let frame = if format == Format::Json {
            let snapshot = serde_json::json!({
                "at": crate::table::rfc3339(miren_core::runtime::now_millis()),
                "apps": apps,
            });
            let mut line =
                serde_json::to_string(&snapshot).map_err(|e| ClientError::Local(e.to_string()))?;
            line.push('\n');
            line
        } else if screen {
            // Home, each line cleared to its end, the rest of the screen cleared.
            let body = view(&apps).replace('\n', "\x1b[K\n");
            format!("\x1b[H{body}\x1b[J")
        } else {
            format!("{}\n", view(&apps))
        };
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(frame.as_bytes()).and_then(|()| out.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(Exit::Ok);
            }
            return Err(ClientError::Local(format!("writing the output: {e}")));
        }
        frames += 1;
        if args.iterations.is_some_and(|n| frames >= n) {
            return Ok(Exit::Ok);
        }
    }
}

/// One frame: a line per app, then every instance.
fn view(apps: &[AppStatus]) -> String {
    let now = crate::table::rfc3339(miren_core::runtime::now_millis());
    let mut out = format!(
        "miren top: {} apps, {now} (every {}s; Ctrl-C quits)\n\n",
        apps.len(),
        EVERY.as_secs()
    );
    let rows: Vec<Vec<String>> = apps
        .iter()
        .map(|a| {
            let t = a.traffic.first();
            let cpu: f64 = a.instances.iter().filter_map(|i| i.cpu_percent).sum();
            let memory: u64 = a.instances.iter().filter_map(|i| i.memory_bytes).sum();
            vec![
                a.app.name.clone(),
                a.app.number.map_or("-".into(), |n| format!("v{n}")),
                a.app.status.clone(),
                t.map_or("-".into(), |t| format!("{:.1}", t.req_per_sec)),
                t.and_then(|t| t.p95_ms)
                    .map_or("-".into(), |p| format!("{p:.1}ms")),
                t.map_or("-".into(), |t| format!("{:.1}%", t.error_rate * 100.0)),
                a.instances.len().to_string(),
                format!("{cpu:.1}%"),
                status_view::bytes(memory),
            ]
        })
        .collect();
    out.push_str(&render(
        &[
            "APP",
            "VERSION",
            "STATUS",
            "REQ/S",
            "P95",
            "5XX",
            "INSTANCES",
            "CPU",
            "MEMORY",
        ],
        &rows,
    ));
    let instances: Vec<_> = apps.iter().flat_map(|a| a.instances.clone()).collect();
    if !instances.is_empty() {
        out.push('\n');
        out.push_str(&status_view::instances(&instances));
    }
    out
}

/// The terminal's alternate screen with the cursor hidden, while `top` draws.
struct Screen;

impl Screen {
    fn enter() -> Result<Self, ClientError> {
        let mut out = std::io::stdout().lock();
        out.write_all(b"\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J")
            .and_then(|()| out.flush())
            .map_err(|e| ClientError::Local(format!("writing the output: {e}")))?;
        Ok(Self)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut out = std::io::stdout().lock();
        let _ = out
            .write_all(b"\x1b[?25h\x1b[?1049l")
            .and_then(|()| out.flush());
    }
}
