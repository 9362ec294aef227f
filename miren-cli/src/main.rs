//! The `miren` command.
//!
//! `main` only maps the outcome of [`run`] to an exit code (SPEC §11): 0 ok,
//! 1 failed or invalid, 2 usage error or nothing to talk to.

mod aliases;
mod api;
mod ask;
mod cli;
mod client;
mod cmd;
mod frames;
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
#[repr(u8)]
pub enum Exit {
    /// Everything worked.
    Ok = 0,
    /// The command ran and the answer is "no" (invalid config, failed deploy).
    Failed = 1,
    /// Bad usage, or a file or server that isn't there.
    Usage = 2,
    /// What a command run on the server exited with (`task run`, `app run`,
    /// `sandbox exec`), passed through.
    Passed(u8),
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Passed(c) => c,
        }
    }

    /// A remote command's exit code; signals and unknown ends as shells report them.
    pub fn of_remote(code: Option<i32>) -> Exit {
        match code {
            Some(0) => Exit::Ok,
            Some(c) => Exit::Passed(u8::try_from(c.rem_euclid(256)).unwrap_or(1)),
            None => Exit::Failed,
        }
    }
}

fn main() -> ExitCode {
    let args = match aliases::expand(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(Exit::Usage.code());
        }
    };
    let cli = cli::Cli::parse_from(args);
    match cmd::run(cli) {
        Ok(code) => ExitCode::from(code.code()),
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
            ExitCode::from(Exit::Failed.code())
        }
    }
}
