//! One module per subcommand; each returns the exit code it earned.

mod app;
mod completion;
mod deploy;
mod init;
mod logs;
mod pool;
mod route;
mod sandbox;
mod schema;
mod server;
mod up;
mod validate;

use crate::Exit;
use crate::cli::{Cli, Command, Format};
use crate::client::{Client, ClientError};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    let client = || Client::new(cli.server.as_deref(), cli.token.clone());
    let format = cli.format;
    match cli.command {
        Command::Validate(args) => validate::run(&args, cli.format, cli.color),
        Command::Schema => schema::run(),
        Command::Init(args) => init::run(&args),
        Command::Completion(args) => completion::run(&args),
        Command::Server(args) => runtime()?.block_on(server::run(args)),
        Command::Up(args) => runtime()?.block_on(up::run(args, cli.color)),
        Command::Deploy(args) => remote(deploy::run(&client(), &args, cli.color, format)),
        Command::App(c) => remote(app::run(&client(), c, format)),
        Command::SandboxPool(c) => remote(pool::run(&client(), c, format)),
        Command::Sandbox(c) => remote(sandbox::run(&client(), c, format)),
        Command::Logs(args) => remote(logs::run(&client(), &args, format)),
        Command::Route(c) => remote(route::run(&client(), c, format)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Runs a command that talks to a server: an unreachable server is exit 2 with the
/// hint, a refusal is exit 1 with the server's message.
fn remote(f: impl std::future::Future<Output = Result<Exit, ClientError>>) -> anyhow::Result<Exit> {
    match runtime()?.block_on(f) {
        Ok(e) => Ok(e),
        Err(e @ ClientError::Unreachable { .. }) => {
            eprintln!("error: {e}");
            Ok(Exit::Usage)
        }
        Err(ClientError::Api { message, .. }) => {
            eprintln!("error: {message}");
            Ok(Exit::Failed)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(Exit::Failed)
        }
    }
}

/// Prints `value` as pretty JSON.
fn print_json<T: serde::Serialize>(value: &T) -> Result<(), ClientError> {
    let s = serde_json::to_string_pretty(value).map_err(|e| ClientError::Local(e.to_string()))?;
    println!("{s}");
    Ok(())
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
