//! Flags and subcommands, as clap parses them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub use crate::server::RuntimeChoice;

/// Run apps made of several services from one `.miren/app.toml`.
#[derive(Debug, Parser)]
#[command(name = "miren", version, about, propagate_version = true)]
pub struct Cli {
    /// Output format of listings, reports and errors.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table, help_heading = GLOBAL)]
    pub format: Format,
    /// When to use colour on the terminal.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, env = "MIREN_COLOR", help_heading = GLOBAL)]
    pub color: ColorChoice,
    /// The server: its API socket path, or http://host:port [env: MIREN_SERVER]
    /// (default: the `miren up` of the app here, else the default data dir's socket).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub server: Option<String>,
    /// Times in tables as RFC 3339 UTC instead of `5s ago` (JSON always has them so).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub timestamps: bool,
    /// The API token, for a server reached over TCP.
    #[arg(long, global = true, env = "MIREN_TOKEN", hide_env_values = true, help_heading = GLOBAL)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the options every command takes are listed: after the command's own.
const GLOBAL: &str = "Global options";

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
    #[command(
        after_help = "Examples:\n  miren schema > .miren/app.schema.json\n  miren schema | head -20"
    )]
    Schema,
    /// Write a starter .miren/app.toml in the current directory.
    Init(InitArgs),
    /// Run an app right here: an embedded server, the app deployed, its logs streamed.
    Up(UpArgs),
    /// Run the Miren server.
    Server(Box<ServerArgs>),
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
    /// Config vars and secrets, over app.toml's env.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Tasks: commands run on a deploy, on a schedule or by hand.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Addons: databases and caches the platform runs for an app.
    #[command(subcommand)]
    Addon(AddonCommand),
    /// Secrets of the server's own store, sealed at rest (`backend = "cluster"`).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Host names routed to apps.
    #[command(subcommand)]
    Route(RouteCommand),
    /// The nodes of a cluster (`miren server --store etcd://…`).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Every app's traffic and instances, redrawn every second (like `top`).
    #[command(after_help = "Examples:
  miren top                        # Ctrl-C quits
  miren top -n 1                   # one frame, then exit
  miren top --format json          # a snapshot per line, every second")]
    Top(TopArgs),
    /// The web dashboard: prints a one-time login link to it.
    #[command(after_help = "Examples:
  miren dashboard                  # prints the link (valid 5 minutes, once)
  miren dashboard --open           # and opens it in the browser")]
    Dashboard(DashboardArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  miren completion bash > ~/.local/share/bash-completion/completions/miren\n  miren completion zsh > ~/.zfunc/_miren"
    )]
    Completion(CompletionArgs),
}

/// `miren up`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  miren up                         # the app of this directory (or a parent)
  miren up examples/demo --http-addr 8090
  miren up --runtime process       # everything as local processes")]
pub struct UpArgs {
    /// The app directory (default: the one of ./.miren/app.toml, here or in a parent).
    pub dir: Option<PathBuf>,
    /// Which runtime runs the sandboxes: `auto` puts image services (and code with a
    /// Dockerfile) in Docker containers when an Engine answers, the rest in processes.
    #[arg(long, value_enum, default_value_t = RuntimeChoice::Auto)]
    pub runtime: RuntimeChoice,
    /// Where the HTTP proxy listens: `127.0.0.1:8080`, `localhost:8080`, `8080` (on
    /// 127.0.0.1) or `:8080` (every interface).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = listen_addr)]
    pub http_addr: SocketAddr,
    /// Also serve service DNS (`<service>.<app>.app.miren`) here; off by default.
    #[arg(long, value_parser = listen_addr)]
    pub dns_addr: Option<SocketAddr>,
}

/// `miren server`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  miren server                                   # state in ~/.local/share/miren
  miren server --data-dir /srv/miren --http-addr :80
  miren server --api-addr 10.0.0.5:7777          # also the API on TCP, with a token")]
pub struct ServerArgs {
    /// Where state lives (default: $MIREN_DATA_DIR, $XDG_DATA_HOME/miren or
    /// ~/.local/share/miren).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Which runtime runs the sandboxes: `auto` puts image services (and code with a
    /// Dockerfile) in Docker containers when an Engine answers, the rest in processes.
    #[arg(long, value_enum, default_value_t = RuntimeChoice::Auto)]
    pub runtime: RuntimeChoice,
    /// Where the HTTP proxy listens: `127.0.0.1:8080`, `localhost:8080`, `8080` (on
    /// 127.0.0.1) or `:8080` (every interface).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = listen_addr)]
    pub http_addr: SocketAddr,
    /// Where service DNS listens (UDP and TCP).
    #[arg(long, default_value = "127.0.0.1:5353", value_parser = listen_addr)]
    pub dns_addr: SocketAddr,
    /// Where service DNS forwards sandboxes' out-of-zone questions (default: the first
    /// nameserver in /etc/resolv.conf).
    #[arg(long)]
    pub dns_upstream: Option<SocketAddr>,
    /// The API's Unix socket (default: <data-dir>/miren.sock).
    #[arg(long)]
    pub api_socket: Option<PathBuf>,
    /// Also serve the API on TCP (bearer token required; see <data-dir>/api-token).
    #[arg(long, value_parser = listen_addr)]
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
    /// Keep the cluster state in etcd instead of the data dir:
    /// `etcd://HOST:PORT[,HOST:PORT…][/PREFIX]`. One server leads the cluster and runs
    /// its controller.
    #[arg(long, value_name = "etcd://HOST:PORT")]
    pub store: Option<miren_store_etcd::EtcdAddress>,
    /// This node's name in the cluster (default: the host name).
    #[arg(long, value_name = "NAME", requires = "store")]
    pub node: Option<String>,
    /// The address other nodes reach this one at: process instances are recorded (and
    /// probed) at it, and told it as $MIREN_NODE_ADDR to bind (or bind 0.0.0.0).
    /// Default: 127.0.0.1, this machine only.
    #[arg(long, value_name = "IP")]
    pub node_addr: Option<std::net::IpAddr>,
    /// Also serve `/metrics` (Prometheus' text format) here, without a token; it is
    /// always on the API.
    #[arg(long, value_parser = listen_addr)]
    pub metrics_addr: Option<SocketAddr>,
    /// Serve the web dashboard here, or `off`; `miren dashboard` prints a link that
    /// logs a browser in. Default: 127.0.0.1:8081 (when it is taken, the server starts
    /// without the dashboard and says so).
    #[arg(long, value_name = "ADDR|off", value_parser = ui_addr)]
    pub ui_addr: Option<UiAddr>,
}

/// `--ui-addr`: an address, or `off`.
#[derive(Debug, Clone, Copy)]
pub struct UiAddr(pub Option<SocketAddr>);

fn ui_addr(s: &str) -> Result<UiAddr, String> {
    if s == "off" {
        return Ok(UiAddr(None));
    }
    listen_addr(s).map(|a| UiAddr(Some(a)))
}

/// `miren deploy`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  miren deploy                     # the app of this directory (or a parent)
  miren deploy path/to/app -a staging
  miren deploy --no-wait")]
pub struct DeployArgs {
    /// The app directory (default: the one of ./.miren/app.toml, here or in a parent).
    #[arg(value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// The app directory (as DIR).
    #[arg(short = 'd', long = "dir", conflicts_with = "path", hide = true)]
    pub dir: Option<PathBuf>,
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
    /// The app (default: the one of ./.miren/app.toml).
    #[arg(short = 'a', long = "app")]
    pub app: Option<String>,
}

/// `miren app …`.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Every app, its version and status.
    #[command(after_help = "Examples:\n  miren app list\n  miren app list --format json")]
    List,
    /// An app's pools: desired counts and why.
    #[command(
        after_help = "Examples:\n  miren app status            # the app of this directory\n  miren app status -a shop"
    )]
    Status(AppArg),
    /// An app's versions, newest first.
    #[command(
        after_help = "Examples:\n  miren app history -a shop\n  miren app history --format json"
    )]
    History(AppArg),
    /// Re-activate an earlier version (default: the one before the active one).
    #[command(
        after_help = "Examples:\n  miren app rollback -a shop        # to the version before\n  miren app rollback -a shop v3     # to version 3\n  miren app rollback -a shop Qx7    # any unique part of a version id"
    )]
    Rollback {
        /// The app (default: the one of ./.miren/app.toml).
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
        /// The version to go back to: its number (`v3`), its id or a unique part of it.
        #[arg(value_name = "VERSION")]
        to: Option<String>,
    },
    /// Replace an app's instances with new ones, gated like a deploy (no request fails).
    #[command(
        after_help = "Examples:\n  miren app restart -a shop\n  miren app restart --service worker"
    )]
    Restart {
        /// The app (default: the one of ./.miren/app.toml).
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
    },
    /// Run a one-off command with a service's code, image and env; exits with its code.
    #[command(
        after_help = "Examples:\n  miren app run -a shop -- python manage.py migrate\n  miren app run -it -- bash\n  miren app run --service worker -- 'echo $QUEUES'   # one word: a shell command line\n  pg_dump … | miren app run -- psql \"$DATABASE_URL\"   # stdin is passed through"
    )]
    Run {
        /// The app (default: the one of ./.miren/app.toml).
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
        /// Whose code, image and env (default `web`, else the app's built code).
        #[arg(long)]
        service: Option<String>,
        #[command(flatten)]
        attach: AttachArgs,
    },
    /// Stop everything of an app and forget it (its disks stay unless purged).
    #[command(
        after_help = "Examples:\n  miren app delete shop\n  miren app delete -a shop --yes --purge-disks"
    )]
    Delete {
        /// The app.
        #[arg(value_name = "APP")]
        name: Option<String>,
        /// The app (as APP; default: the one of ./.miren/app.toml).
        #[arg(short = 'a', long = "app", conflicts_with = "name")]
        app: Option<String>,
        /// Also delete its disks.
        #[arg(long)]
        purge_disks: bool,
        /// Don't ask.
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

/// `miren sandbox-pool …`.
#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Pools and their counts.
    #[command(
        after_help = "Examples:\n  miren sandbox-pool list          # the app of this directory, or every app\n  miren sandbox-pool list -a shop"
    )]
    List {
        /// Only this app's (default: the app of ./.miren/app.toml, if any).
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
    },
    /// Set how many sandboxes a pool runs.
    #[command(
        after_help = "Examples:\n  miren sandbox-pool set-desired pool-1Bx7 3\n  miren sandbox-pool set-desired Qx7 0        # any unique part of the id"
    )]
    SetDesired {
        /// The pool: its id or a unique part of it.
        pool: String,
        /// How many.
        #[arg(allow_negative_numbers = true)]
        desired: String,
        /// Past an auto pool's `max_instances`.
        #[arg(long)]
        force: bool,
        /// Don't ask (more than 64 instances of a fixed pool).
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

/// `miren sandbox …`.
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Sandboxes and their status.
    #[command(
        after_help = "Examples:\n  miren sandbox list               # the app of this directory, or every app\n  miren sandbox list -a shop --status dead"
    )]
    List {
        /// Only this app's (default: the app of ./.miren/app.toml, if any).
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
        /// Only this status: pending, running, stopped, dead.
        #[arg(long)]
        status: Option<String>,
    },
    /// Stop a sandbox (its pool starts a replacement).
    #[command(
        after_help = "Examples:\n  miren sandbox stop shop-web-1Bx7Qx7Rk2\n  miren sandbox stop Rk2          # any unique part of the id"
    )]
    Stop {
        /// The sandbox: its id or a unique part of it.
        id: String,
    },
    /// Run a command in a running sandbox's environment; exits with its exit code.
    #[command(
        after_help = "Examples:\n  miren sandbox exec Rk2 -- env\n  miren sandbox exec -it shop-web-1Bx7Qx7Rk2 -- sh\n  miren sandbox exec Rk2 -- 'ls $MIREN_DISK_DATA'   # one word: a shell command line"
    )]
    Exec {
        /// The sandbox: its id or a unique part of it.
        id: String,
        #[command(flatten)]
        attach: AttachArgs,
    },
}

/// How `app run` and `sandbox exec` attach.
#[derive(Debug, Clone, clap::Args)]
pub struct AttachArgs {
    /// Pass this terminal's input through (piped input always is).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Run the command on a terminal (raw keys in, one output stream).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command: one word is a shell command line, more are a program and its
    /// arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `miren logs`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  miren logs                       # the app of this directory
  miren logs -a shop --service web --last 10m -f
  miren logs -s Rk2                # one sandbox, by any unique part of its id")]
pub struct LogsArgs {
    /// The app (default: the one of ./.miren/app.toml).
    #[arg(short = 'a', long = "app", conflicts_with = "sandbox")]
    pub app: Option<String>,
    /// Only this service of the app.
    #[arg(long, conflicts_with = "sandbox")]
    pub service: Option<String>,
    /// Only this sandbox (its id or a unique part of it).
    #[arg(short = 's', long = "sandbox")]
    pub sandbox: Option<String>,
    /// Only lines from this long ago on (`10m`, `2h`, `1d`).
    #[arg(long, visible_alias = "since")]
    pub last: Option<String>,
    /// Keep printing new lines as they come.
    #[arg(short = 'f', long)]
    pub follow: bool,
}

/// `miren top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// Stop after this many frames (default: until Ctrl-C).
    #[arg(short = 'n', long = "iterations", value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: Option<u64>,
}

/// `miren dashboard`.
#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    /// Open the link in the browser too (`xdg-open`).
    #[arg(long)]
    pub open: bool,
}

/// `miren node …`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Every node: its proxy's address, whether it leads, stands by or is lost, and
    /// how many sandboxes it runs.
    List,
    /// Move a node's sandboxes to the other nodes, one at a time, failing no
    /// request, and place nothing new there (until `undrain`). Sandboxes with a disk
    /// stay: their disk is there.
    #[command(after_help = "Examples:\n  miren node drain b\n  miren node undrain b")]
    Drain {
        /// The node.
        name: String,
    },
    /// Let sandboxes be placed on a drained node again.
    Undrain {
        /// The node.
        name: String,
    },
}

/// `miren route …`.
#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Route a host to an app.
    #[command(
        after_help = "Examples:\n  miren route add shop.example.com -a shop\n  miren route add www.example.com            # to the app of this directory"
    )]
    Add {
        /// The host name (no scheme, path or port).
        host: String,
        /// The app (default: the one of ./.miren/app.toml).
        #[arg(short = 'a', long)]
        app: Option<String>,
    },
    /// Route a host to an app (same as `add`).
    #[command(after_help = "Examples:\n  miren route set shop.example.com shop")]
    Set {
        /// The host name.
        host: String,
        /// The app.
        app: String,
    },
    /// Every route.
    #[command(after_help = "Examples:\n  miren route list\n  miren route list --format json")]
    List,
    /// Remove a host's route.
    #[command(
        after_help = "Examples:\n  miren route remove shop.example.com\n  miren route remove '*' --yes     # the default route"
    )]
    Remove {
        /// The host name.
        host: String,
        /// Don't ask (removing the default route).
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Send hosts without a route of their own to an app.
    #[command(
        after_help = "Examples:\n  miren route set-default -a shop\n  miren route set-default          # the app of this directory"
    )]
    SetDefault {
        /// The app (default: the one of ./.miren/app.toml).
        #[arg(short = 'a', long)]
        app: Option<String>,
    },
}

/// `miren env …`.
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Set config vars (rolled out as a new version of the same code).
    #[command(
        after_help = "Examples:\n  miren env set -a shop LOG_LEVEL=debug\n  miren env set --secret STRIPE_KEY=sk_live_…\n  miren env set --service worker QUEUES=high,low"
    )]
    Set {
        /// The app (default: the one of ./.miren/app.toml).
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
        /// Only this service's (default: every service's).
        #[arg(long)]
        service: Option<String>,
        /// Secret values: never shown again, by anything.
        #[arg(long)]
        secret: bool,
        /// `KEY=VALUE`, one or more.
        #[arg(required = true, value_name = "KEY=VALUE")]
        vars: Vec<String>,
    },
    /// Remove config vars (app.toml's value, if any, applies again).
    #[command(
        after_help = "Examples:\n  miren env unset -a shop LOG_LEVEL\n  miren env unset --service worker QUEUES"
    )]
    Unset {
        /// The app (default: the one of ./.miren/app.toml).
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
        /// The service whose vars they are (default: the app-wide ones).
        #[arg(long)]
        service: Option<String>,
        /// The keys.
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
    /// The config vars; secrets show as `(secret)`.
    #[command(after_help = "Examples:\n  miren env list -a shop\n  miren env list --format json")]
    List {
        /// The app (default: the one of ./.miren/app.toml).
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
    },
}

/// `miren secret`.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Set a secret's value: a new version (the same value again makes none). The
    /// value comes from a prompt that doesn't echo, from stdin, or `--value @FILE`.
    #[command(
        after_help = "Examples:\n  miren secret set payments/stripe-key\n  miren secret set tls/cert --value @server.pem\n  printf %s \"$TOKEN\" | miren secret set registry/npm-token"
    )]
    Set {
        /// The secret's path (`payments/stripe-key`).
        path: String,
        /// `@FILE`: the value is the file's content (a trailing newline trimmed).
        #[arg(long, value_name = "@FILE")]
        value: Option<String>,
    },
    /// The secrets: path, current version, versions (never a value).
    #[command(after_help = "Examples:\n  miren secret list\n  miren secret list --format json")]
    List,
    /// A secret's versions, newest first.
    #[command(after_help = "Examples:\n  miren secret versions payments/stripe-key")]
    Versions {
        /// The secret's path.
        path: String,
    },
    /// Disable a version: references to it fail closed (deploys and starts fail).
    #[command(after_help = "Examples:\n  miren secret disable payments/stripe-key@x1A")]
    Disable {
        /// `path@version`.
        secret: String,
    },
    /// Enable a disabled version again.
    #[command(after_help = "Examples:\n  miren secret enable payments/stripe-key@x1A")]
    Enable {
        /// `path@version`.
        secret: String,
    },
    /// Delete a secret (or one version, `path@version`) for good (asks first on a
    /// terminal).
    #[command(
        after_help = "Examples:\n  miren secret destroy payments/old-key\n  miren secret destroy payments/stripe-key@x1A --yes"
    )]
    Destroy {
        /// `path` or `path@version`.
        secret: String,
        /// Don't ask.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// `miren addon`.
#[derive(Debug, Subcommand)]
pub enum AddonCommand {
    /// The app's addons: variant, image, status, and the variables its services get.
    #[command(
        after_help = "Examples:\n  miren addon list -a shop\n  miren addon list --format json"
    )]
    List {
        /// The app (default: the one of ./.miren/app.toml).
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
    },
    /// Provision an addon for the app (rolled out with the active code); it stays
    /// until destroyed.
    #[command(
        disable_version_flag = true,
        after_help = "Examples:\n  miren addon create miren-postgresql -a shop\n  miren addon create miren-postgresql:small --version 16\n  miren addon create miren-valkey --service worker"
    )]
    Create {
        /// `NAME[:VARIANT]`, e.g. `miren-postgresql:small`.
        #[arg(value_name = "NAME[:VARIANT]")]
        addon: String,
        /// The app (default: the one of ./.miren/app.toml).
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
        /// A version tag, or a whole image reference (default: the addon's).
        #[arg(long = "version", id = "addon_version", value_name = "VERSION")]
        version: Option<String>,
        /// Only these services get its variables (repeatable; default: every one).
        #[arg(long = "service", value_name = "SERVICE")]
        services: Vec<String>,
    },
    /// Remove an addon and delete its data (asks first on a terminal).
    #[command(
        after_help = "Examples:\n  miren addon destroy miren-postgresql -a shop\n  miren addon destroy miren-valkey --yes"
    )]
    Destroy {
        /// The addon.
        addon: String,
        /// The app (default: the one of ./.miren/app.toml).
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
        /// Don't ask.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// The addons this server provisions, their versions and variants.
    #[command(
        name = "list-available",
        after_help = "Examples:\n  miren addon list-available\n  miren addon list-available --format json"
    )]
    ListAvailable,
    /// The variants of an addon.
    #[command(after_help = "Examples:\n  miren addon variants miren-postgresql")]
    Variants {
        /// The addon.
        addon: String,
    },
}

/// `miren task`.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// The tasks of the active version: trigger, schedule, next and last run.
    #[command(after_help = "Examples:\n  miren task list -a shop\n  miren task list --format json")]
    List {
        /// The app (default: the one of ./.miren/app.toml).
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
    },
    /// Run a task now, its output streamed; exits with the task's exit code.
    #[command(
        after_help = "Examples:\n  miren task run -a shop migrate\n  miren task run seed --detach     # start it and return"
    )]
    Run {
        /// The app (default: the one of ./.miren/app.toml).
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
        /// The task.
        #[arg(value_name = "TASK")]
        task: String,
        /// Start it and return at once (`task history` shows how it ended).
        #[arg(long)]
        detach: bool,
    },
    /// Past runs, newest first: trigger, status, exit code, duration.
    #[command(
        after_help = "Examples:\n  miren task history -a shop\n  miren task history -a shop migrate --format json"
    )]
    History {
        /// The app (default: the one of ./.miren/app.toml).
        #[arg(short = 'a', long = "app")]
        app: Option<String>,
        /// Only this task's.
        #[arg(value_name = "TASK")]
        task: Option<String>,
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
#[command(after_help = "Examples:
  miren validate                   # .miren/app.toml here or in a parent
  miren validate path/to/app --resolved
  miren validate --format json")]
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
#[command(after_help = "Examples:
  miren init                       # guesses the command from package.json, manage.py, go.mod, …
  miren init -n shop -d path/to/app")]
pub struct InitArgs {
    /// The app's name; default: the directory's name, made into a valid one.
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Where to write; default: the current directory.
    #[arg(short = 'd', long = "dir", default_value = ".")]
    pub dir: PathBuf,
}

/// A listening address as people write one: `127.0.0.1:8080`, `[::1]:8080`,
/// `localhost:8080`, `8080` (loopback, as the defaults) or `:8080` (every interface,
/// as Go and Docker read it).
pub fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("`{p}` is not a port (1-65535, or 0 for any free one)"))
    };
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if !s.contains(':') {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port(s)?));
    }
    if let Some(p) = s.strip_prefix(':') {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port(p)?));
    }
    let Some((host, p)) = s.rsplit_once(':') else {
        return Err(format!("`{s}` is not an address"));
    };
    let p = port(p)?;
    let found = (host, p)
        .to_socket_addrs()
        .map_err(|e| format!("`{host}` does not resolve here: {e}"))?
        .collect::<Vec<_>>();
    // `localhost` is both ::1 and 127.0.0.1: the IPv4 one is what clients try first.
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or(found.first())
        .copied()
        .ok_or_else(|| format!("`{host}` does not resolve here"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn listening_addresses_are_read_as_people_write_them() {
        let a = |s: &str| super::listen_addr(s).map(|a| a.to_string());
        assert_eq!(a("127.0.0.1:8080").as_deref(), Ok("127.0.0.1:8080"));
        assert_eq!(a("8080").as_deref(), Ok("127.0.0.1:8080"));
        assert_eq!(a(":8080").as_deref(), Ok("0.0.0.0:8080"));
        assert_eq!(a("localhost:8080").as_deref(), Ok("127.0.0.1:8080"));
        assert_eq!(a("[::1]:53").as_deref(), Ok("[::1]:53"));
        assert!(a("80800").is_err_and(|e| e.contains("not a port")));
        assert!(a("localhost:http").is_err_and(|e| e.contains("not a port")));
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
