//! Flags and subcommands, as clap parses them.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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
