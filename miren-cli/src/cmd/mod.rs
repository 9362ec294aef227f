//! One module per subcommand; each returns the exit code it earned.

mod init;
mod schema;
mod validate;

use crate::Exit;
use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Validate(args) => validate::run(&args, cli.format, cli.color),
        Command::Schema => schema::run(),
        Command::Init(args) => init::run(&args),
    }
}
