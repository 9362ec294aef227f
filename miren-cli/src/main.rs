//! The `miren` command.
//!
//! `main` only maps the outcome of [`run`] to an exit code (SPEC §11): 0 ok,
//! 1 failed or invalid, 2 usage error or nothing to talk to.

mod api;
mod ask;
mod cli;
mod client;
mod cmd;
mod here;
mod output;
mod server;
mod table;

use std::process::ExitCode;

use clap::Parser;

// The proxy allocates per request; mimalloc cut its CPU per request by ~7% in
// benches/proxy (see benches/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything worked.
    Ok = 0,
    /// The command ran and the answer is "no" (invalid config, failed deploy).
    Failed = 1,
    /// Bad usage, or a file or server that isn't there.
    Usage = 2,
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            // A closed pipe (`miren schema | head`) is not an error.
            let broken = std::io::ErrorKind::BrokenPipe;
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == broken)
                    || c.downcast_ref::<serde_json::Error>()
                        .and_then(serde_json::Error::io_error_kind)
                        == Some(broken)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::from(Exit::Failed as u8)
        }
    }
}
