//! One module per subcommand; each returns the exit code it earned.

mod addon;
mod app;
mod attach;
mod completion;
mod dashboard;
mod deploy;
mod env;
mod follow;
mod init;
mod logs;
mod node;
mod pool;
mod route;
mod sandbox;
mod schema;
mod secret;
mod server;
mod status_view;
mod task;
mod top;
mod up;
mod validate;

use std::io::Write;

use crate::Exit;
use crate::cli::{Cli, Command, Format};
use crate::client::{Client, ClientError};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    crate::table::absolute_times(cli.timestamps);
    let client = || {
        let cwd = std::env::current_dir().unwrap_or_default();
        let env = std::env::var("MIREN_SERVER").ok();
        Client::new(crate::client::locate(
            cli.server.as_deref(),
            env.as_deref(),
            cli.token.clone(),
            &cwd,
        ))
    };
    let format = cli.format;
    match cli.command {
        Command::Validate(args) => validate::run(&args, cli.format, cli.color),
        Command::Schema => schema::run(),
        Command::Init(args) => init::run(&args, format),
        Command::Completion(args) => completion::run(&args),
        Command::Server(args) => runtime()?.block_on(server::run(*args)),
        Command::Up(args) => runtime()?.block_on(up::run(args, cli.color)),
        Command::Deploy(args) => remote(format, deploy::run(&client(), &args, cli.color, format)),
        Command::App(c) => remote(format, app::run(&client(), c, format)),
        Command::SandboxPool(c) => remote(format, pool::run(&client(), c, format)),
        Command::Sandbox(c) => remote(format, sandbox::run(&client(), c, format)),
        Command::Logs(args) => remote(format, logs::run(&client(), &args, format)),
        Command::Route(c) => remote(format, route::run(&client(), c, format)),
        Command::Node(c) => remote(format, node::run(&client(), c, format)),
        Command::Top(args) => remote(format, top::run(&client(), &args, format)),
        Command::Dashboard(args) => remote(format, dashboard::run(&client(), &args, format)),
        Command::Env(c) => remote(format, env::run(&client(), c, format)),
        Command::Task(c) => remote(format, task::run(&client(), c, format)),
        Command::Addon(c) => remote(format, addon::run(&client(), c, format)),
        Command::Secret(c) => remote(format, secret::run(&client(), c, format)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Runs a command that talks to a server: an unreachable server or a command line
/// that doesn't say enough is exit 2, a refusal exit 1 with the server's message. With
/// `--format json` the error is also the JSON document on stdout.
fn remote(
    format: Format,
    f: impl std::future::Future<Output = Result<Exit, ClientError>>,
) -> anyhow::Result<Exit> {
    let e = match runtime()?.block_on(f) {
        Ok(e) => return Ok(e),
        Err(e) => e,
    };
    let (code, exit, message) = match &e {
        ClientError::Unreachable { .. } => ("unreachable", Exit::Usage, e.to_string()),
        ClientError::Usage(m) => ("usage", Exit::Usage, m.clone()),
        ClientError::Invalid(m) => ("invalid", Exit::Failed, m.clone()),
        ClientError::Api { code, message, .. } => (code.as_str(), Exit::Failed, message.clone()),
        ClientError::Protocol(_) => ("protocol", Exit::Failed, e.to_string()),
        ClientError::Local(_) => ("local", Exit::Failed, e.to_string()),
    };
    if is_broken_pipe(&message) {
        return Ok(Exit::Ok);
    }
    if format == Format::Json {
        json_error(code, &message);
    }
    eprintln!("error: {message}");
    Ok(exit)
}

/// `{"error": {"code", "message"}}` on stdout, for `--format json`.
fn json_error(code: &str, message: &str) {
    let body = crate::api::ErrorBody {
        error: crate::api::ErrorDetail {
            code: code.to_string(),
            message: message.to_string(),
        },
    };
    if let Ok(s) = serde_json::to_string_pretty(&body) {
        let _ = writeln!(std::io::stdout(), "{s}");
    }
}

/// A reader that went away (`miren … | head`) is not an error to report.
fn is_broken_pipe(message: &str) -> bool {
    message.contains("Broken pipe")
}

/// The app `-a` names, or the one of the current directory.
fn which(given: Option<String>) -> Result<String, ClientError> {
    crate::here::app(given.as_deref()).map_err(ClientError::Usage)
}

/// Prints `value` as pretty JSON, its times as RFC 3339.
fn print_json<T: serde::Serialize>(value: &T) -> Result<(), ClientError> {
    let v = serde_json::to_value(value).map_err(|e| ClientError::Local(e.to_string()))?;
    let s = serde_json::to_string_pretty(&crate::table::json_times(v))
        .map_err(|e| ClientError::Local(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}")
        .and_then(|()| out.flush())
        .map_err(|e| ClientError::Local(format!("writing the output: {e}")))
}

/// JSON or a table, as asked.
fn listing<T: serde::Serialize>(
    format: Format,
    items: &[T],
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> Result<Exit, ClientError> {
    match format {
        Format::Json => print_json(&items)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = items.iter().map(row).collect();
            crate::table::print(headers, &rows)
                .map_err(|e| ClientError::Local(format!("writing the table: {e}")))?;
        }
    }
    Ok(Exit::Ok)
}
