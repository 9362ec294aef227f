//! Flags and subcommands, as clap parses them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub use crate::server::RuntimeChoice;

/// Run apps made of several services from one `.miren/app.toml`.
#[derive(Debug, Parser)]
#[command(name = "miren", version, about, propagate_version = true)]
pub struct Cli {
    /// Output format of listings and reports.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// When to use colour on the terminal.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, env = "MIREN_COLOR")]
    pub color: ColorChoice,
    /// The server: its API socket path, or http://host:port (default: the socket in
    /// the default data dir).
    #[arg(long, global = true, env = "MIREN_SERVER")]
    pub server: Option<String>,
    /// The API token, for a server reached over TCP.
    #[arg(long, global = true, env = "MIREN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Table,
    /// Machine-readable JSON.
    Json,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when writing to a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check an app.toml and explain every problem in it.
    Validate(ValidateArgs),
    /// Print the JSON Schema of app.toml (for editors).
    Schema,
    /// Write a starter .miren/app.toml in the current directory.
    Init(InitArgs),
    /// Run an app right here: an embedded server, the app deployed, its logs streamed.
    Up(UpArgs),
    /// Run the Miren server.
    Server(ServerArgs),
    /// Deploy the app in a directory.
    Deploy(DeployArgs),
    /// Apps: list, status, history, rollback, delete.
    #[command(subcommand)]
    App(AppCommand),
    /// Sandbox pools: one per service spec.
    #[command(subcommand, name = "sandbox-pool")]
    SandboxPool(PoolCommand),
    /// Sandboxes: the running instances.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Show what an app's sandboxes wrote.
    Logs(LogsArgs),
    /// Host names routed to apps.
    #[command(subcommand)]
    Route(RouteCommand),
    /// Print a shell completion script.
    Completion(CompletionArgs),
}

/// `miren up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The app directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Which runtime runs the sandboxes: `auto` puts image services (and code with a
    /// Dockerfile) in Docker containers when an Engine answers, the rest in processes.
    #[arg(long, value_enum, default_value_t = RuntimeChoice::Auto)]
    pub runtime: RuntimeChoice,
    /// Where the HTTP proxy listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Also serve service DNS (`<service>.<app>.app.miren`) here; off by default.
    #[arg(long)]
    pub dns_addr: Option<SocketAddr>,
}

/// `miren server`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Where state lives (default: $MIREN_DATA_DIR, $XDG_DATA_HOME/miren or
    /// ~/.local/share/miren).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Which runtime runs the sandboxes: `auto` puts image services (and code with a
    /// Dockerfile) in Docker containers when an Engine answers, the rest in processes.
    #[arg(long, value_enum, default_value_t = RuntimeChoice::Auto)]
    pub runtime: RuntimeChoice,
    /// Where the HTTP proxy listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Where service DNS listens (UDP and TCP).
    #[arg(long, default_value = "127.0.0.1:5353")]
    pub dns_addr: SocketAddr,
    /// Where service DNS forwards sandboxes' out-of-zone questions (default: the first
    /// nameserver in /etc/resolv.conf).
    #[arg(long)]
    pub dns_upstream: Option<SocketAddr>,
    /// The API's Unix socket (default: <data-dir>/miren.sock).
    #[arg(long)]
    pub api_socket: Option<PathBuf>,
    /// Also serve the API on TCP (bearer token required; see <data-dir>/api-token).
    #[arg(long)]
    pub api_addr: Option<SocketAddr>,
    /// Run process sandboxes as this user (the server must run as root): they reach
    /// their code and disks and nothing else of the data dir. Without it the process
    /// runtime trusts its code with the server's rights.
    #[arg(long, value_name = "USER")]
    pub sandbox_user: Option<String>,
    /// Keep the `X-Forwarded-For` of clients in this network (a load balancer in
    /// front; repeatable). Anyone else's is replaced by their own address.
    #[arg(long, value_name = "CIDR")]
    pub trust_forwarded_from: Vec<miren_proxy::Cidr>,
}

/// `miren deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The app directory.
    #[arg(short = 'd', long = "dir", default_value = ".")]
    pub dir: PathBuf,
    /// Deploy under this app name instead of the one in app.toml.
    #[arg(short = 'a', long = "app")]
    pub app: Option<String>,
    /// Return once the version exists, without waiting for it to be ready.
    #[arg(long)]
    pub no_wait: bool,
}

/// `-a APP`.
#[derive(Debug, clap::Args)]
pub struct AppArg {
    /// The app.
    #[arg(short = 'a', long = "app")]
    pub app: String,
}

/// `miren app …`.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Every app, its version and status.
    List,
    /// An app's pools: desired counts and why.
    Status(AppArg),
    /// An app's versions, newest first.
    History(AppArg),
    /// Re-activate an earlier version (default: the one before the active one).
    Rollback {
        /// The app.
        #[arg(short = 'a', long = "app")]
        app: String,
        /// The version to go back to.
        #[arg(value_name = "VERSION")]
        to: Option<String>,
    },
    /// Stop everything of an app and forget it (its disks stay unless purged).
    Delete {
        /// The app.
        app: String,
        /// Also delete its disks.
        #[arg(long)]
        purge_disks: bool,
    },
}

/// `miren sandbox-pool …`.
#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Pools and their counts.
    List {
        /// Only this app's.
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
    },
    /// Set how many sandboxes a pool runs.
    SetDesired {
        /// The pool id.
        pool: String,
        /// How many.
        desired: u32,
    },
}

/// `miren sandbox …`.
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Sandboxes and their status.
    List {
        /// Only this app's.
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
        /// Only this status: pending, running, stopped, dead.
        #[arg(long)]
        status: Option<String>,
    },
    /// Stop a sandbox (its pool starts a replacement).
    Stop {
        /// The sandbox id.
        id: String,
    },
}

/// `miren logs`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["app", "sandbox"])))]
pub struct LogsArgs {
    /// The app.
    #[arg(short = 'a', long = "app")]
    pub app: Option<String>,
    /// Only this service of the app.
    #[arg(long, requires = "app")]
    pub service: Option<String>,
    /// Only this sandbox (its id or the end of it).
    #[arg(short = 's', long = "sandbox")]
    pub sandbox: Option<String>,
    /// Only lines from this long ago on (`10m`, `2h`).
    #[arg(long)]
    pub last: Option<String>,
    /// Keep printing new lines as they come.
    #[arg(short = 'f', long)]
    pub follow: bool,
}

/// `miren route …`.
#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Route a host to an app.
    Add {
        /// The host name.
        host: String,
        /// The app.
        #[arg(long)]
        app: String,
    },
    /// Route a host to an app (same as `add`).
    Set {
        /// The host name.
        host: String,
        /// The app.
        app: String,
    },
    /// Every route.
    List,
    /// Remove a host's route.
    Remove {
        /// The host name.
        host: String,
    },
    /// Send hosts without a route of their own to an app.
    SetDefault {
        /// The app.
        #[arg(long)]
        app: String,
    },
}

/// `miren completion`.
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `miren validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// An app directory or an app.toml; default: search the current directory and
    /// its parents for .miren/app.toml.
    pub path: Option<PathBuf>,
    /// Also print the resolved config (defaults filled in, env merged) as JSON.
    #[arg(long)]
    pub resolved: bool,
}

/// `miren init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The app's name; default: the directory's name, made into a valid one.
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Where to write; default: the current directory.
    #[arg(short = 'd', long = "dir", default_value = ".")]
    pub dir: PathBuf,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
