//! `miren init [-n NAME]`: a starter app.toml that validates, its commands guessed
//! from the directory's files (`stack`).

mod stack;

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use miren_core::config::{self, names};

use crate::Exit;
use crate::cli::{Format, InitArgs};
use crate::output::display_path;

pub fn run(args: &InitArgs, format: Format) -> anyhow::Result<Exit> {
    let refuse = |code: &str, message: String, help: Option<String>, exit: Exit| {
        if format == Format::Json {
            super::json_error(code, &message);
        }
        eprintln!("error: {message}");
        if let Some(h) = help {
            eprintln!("help: {h}");
        }
        Ok(exit)
    };
    let dir = &args.dir;
    let name = match &args.name {
        Some(n) => match names::dns_label(n) {
            Ok(()) => n.clone(),
            Err(p) => {
                return refuse(
                    "usage",
                    format!("app name `{n}` {}", p.reason),
                    p.fixed.map(|f| format!("try `miren init -n {f}`")),
                    Exit::Usage,
                );
            }
        },
        None => default_name(dir),
    };
    let path = dir.join(config::APP_TOML);
    if path.exists() {
        return refuse(
            "exists",
            format!(
                "{} already exists; nothing was written",
                display_path(&path)
            ),
            Some("edit it, or check it with `miren validate`".into()),
            Exit::Failed,
        );
    }
    let guess = stack::guess(dir);
    let text = starter(&name, &guess);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "wrote {} for app `{name}` ({})",
        display_path(&path),
        guess.stack
    );
    if format == Format::Json {
        let out = serde_json::json!({
            "written": path.display().to_string(),
            "app": name,
            "stack": guess.stack,
            "web": guess.web,
        });
        writeln!(std::io::stdout(), "{out}")?;
    }
    if guess.web == stack::PLACEHOLDER {
        eprintln!(
            "next: write the command that starts your web server (listening on $PORT) in it, then `miren up`"
        );
    } else {
        eprintln!(
            "next: check that `{}` listens on $PORT, then `miren up`",
            guess.web
        );
    }
    Ok(Exit::Ok)
}

/// The directory's name as an app name, or `myapp`.
fn default_name(dir: &Path) -> String {
    let base = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    match names::dns_label(&base) {
        Ok(()) => base,
        Err(p) => p.fixed.unwrap_or_else(|| "myapp".into()),
    }
}

fn starter(name: &str, g: &stack::Guess) -> String {
    let worker = match &g.worker {
        Some(w) => format!("\n# A background worker, always running:\n# [services.worker]\n# command = \"{w}\"\n"),
        None => "\n# A background worker, always running:\n# [services.worker]\n# command = \"./worker\"\n".to_string(),
    };
    format!(
        r#"# Miren app config. Check it with `miren validate`; run it with `miren up`.
name = "{name}"

# Only `web` receives HTTP traffic. Every instance gets its own $PORT to listen on.
[services.web]
command = "{web}"

# `web` scales with traffic, down to zero when idle (these are the defaults).
[services.web.concurrency]
mode = "auto"
requests_per_instance = 10
scale_down_delay = "15m"

# Environment for every service:
# [[env]]
# key = "LOG_LEVEL"
# value = "info"
{worker}"#,
        web = g.web.replace('\\', "\\\\").replace('"', "\\\""),
    )
}
