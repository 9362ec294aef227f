//! `miren completion bash|zsh|fish`.

use clap::CommandFactory;

use crate::Exit;
use crate::cli::{Cli, CompletionArgs};

pub fn run(args: &CompletionArgs) -> anyhow::Result<Exit> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "miren", &mut std::io::stdout());
    Ok(Exit::Ok)
}
