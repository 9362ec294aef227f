//! `.miren/app.toml`: parse, validate, explain, resolve.
//!
//! The pipeline is plain data in, plain data out:
//!
//! ```text
//! text ──decode──▶ AppConfig + SpanIndex ──rules──▶ diagnostics ──resolve──▶ ResolvedApp
//! ```
//!
//! [`validate`] runs all of it and never stops at the first problem: syntax errors,
//! unknown keys, wrong types and rule violations of one file come back together,
//! each pointing at its place in the file.
//!
//! Layout:
//! - `app_config`: the file's shape as Rust types (and its JSON Schema)
//! - `decode`: TOML text to those types, with spans and type/unknown-key errors
//! - `rules`: the rules types can't express (`task_rules`: those of `[tasks.X]`;
//!   `addon_rules`: upstream keys checked and warned about, not carried out yet)
//! - `resolved`: defaults filled, env merged: what the controller consumes
//! - `diagnostic`: problems, positions, rustc-style and JSON rendering
//! - `addons`: the addon catalog, and a resolved config with an app's addons in it
//! - `calendar`: systemd calendar events, for scheduled tasks
//! - `secret_ref`: how a secret of the server's store is named (`path@version`)
//! - `command`: the port a service's command line binds by itself
//! - `defaults`, `duration`, `names`, `suggest`: the small pieces they share

mod addon_rules;
pub mod addons;
mod app_config;
pub mod calendar;
pub mod command;
mod decode;
pub mod defaults;
mod diagnostic;
pub mod duration;
pub mod names;
mod resolved;
mod rules;
pub mod secret_ref;
mod suggest;
mod task_rules;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use app_config::{
    AddonConfig, AppConfig, BuildConfig, ConcurrencyConfig, DiskConfig, DiskProvider, EnvVar,
    HealthConfig, MetricsConfig, Mode, PortConfig, PortType, ServiceConfig, StaticConfig,
    TaskConfig, Trigger, json_schema,
};
pub use decode::{KeySpans, SpanIndex};
pub use diagnostic::{
    Diagnostic, JsonDiagnostic, LineIndex, Position, Related, Report, Severity, Suggestion,
};
pub use resolved::{
    AutoScale, BuildSecretRef, Concurrency, DeclaredAddon, Disk, Health, NamedPort, ResolvedApp,
    ResolvedService, ResolvedTask, Schedule, StaticFiles,
};
pub use rules::COMMANDS;
pub use suggest::closest;

/// Where an app's config lives, relative to its directory.
pub const APP_TOML: &str = ".miren/app.toml";

/// The outcome of validating one file.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The config as written (fields that failed to decode are left at their defaults).
    pub config: AppConfig,
    /// Every problem, in source order.
    pub diagnostics: Vec<Diagnostic>,
    /// The resolved config, when there is no error.
    pub resolved: Option<ResolvedApp>,
    /// Where each decoded value sits in the file.
    pub spans: SpanIndex,
}

impl Validation {
    /// No errors (warnings are fine).
    pub fn is_valid(&self) -> bool {
        self.resolved.is_some()
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    /// A report for rendering, with `file` as the name to print.
    pub fn report<'a>(&'a self, file: &'a str, source: &'a str) -> Report<'a> {
        Report {
            file,
            source,
            diagnostics: &self.diagnostics,
        }
    }
}

/// Validates the text of an app.toml that must name its app (`name`).
pub fn validate(source: &str) -> Validation {
    validate_in(source, None)
}

/// Validates the text of the app.toml of the directory named `dir`: without a `name`,
/// the app is named after the directory (as upstream Miren does), and a warning says
/// so; without either, `name` is missing.
pub fn validate_in(source: &str, dir: Option<&str>) -> Validation {
    let decoded = decode::decode(source);
    let mut config = decoded.config;
    let spans = decoded.spans;
    let mut diagnostics = decoded.diagnostics;
    let mut inferred = None;
    if config.name.is_empty() && spans.get("name").is_none() && !spans.failed("name") {
        match dir.and_then(names::label_from) {
            Some(name) => {
                let d = Diagnostic::warning(
                    "name",
                    0..0,
                    format!("no `name`: the app is `{name}`, after its directory"),
                )
                .with_help(format!(
                    "add `name = \"{name}\"` to keep that name when the directory moves"
                ))
                .with_suggestion(0..0, format!("name = \"{name}\"\n"));
                diagnostics.push(d);
                config.name = name.clone();
                inferred = Some(name);
            }
            None if decoded.syntax_error_at.is_none() => diagnostics.push(
                Diagnostic::error("name", 0..0, "missing key `name` in the file")
                    .with_label("`name` is required")
                    .with_help(match dir {
                        Some(d) => format!(
                            "every app needs a name, and the directory's (`{d}`) can't be one; add it as the first line"
                        ),
                        None => "every app needs a name; add it as the first line".to_string(),
                    })
                    .with_suggestion(0..0, "name = \"myapp\"\n"),
            ),
            None => {}
        }
    }
    diagnostics.extend(rules::check(&config, &spans));
    if let Some(at) = decoded.syntax_error_at {
        // After a syntax error the rest of the tree is the parser's guess: only the
        // syntax errors and errors wholly before the first one are certain.
        diagnostics.retain(|d| {
            d.label.as_deref() == Some("invalid TOML")
                || (d.is_error() && d.span.end <= at && d.related.iter().all(|r| r.span.end <= at))
        });
    }
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    let resolved = (!diagnostics.iter().any(Diagnostic::is_error)).then(|| {
        let mut r = resolved::resolve(&config);
        r.inferred_name = inferred.is_some();
        r
    });
    Validation {
        config,
        diagnostics,
        resolved,
        spans,
    }
}

/// A config that failed validation, as an error value for embedders that just want
/// the resolved config or a reason.
#[derive(Debug, Clone, Error)]
#[error("{file} is invalid: {}", first_error(.diagnostics))]
pub struct InvalidConfig {
    /// The file name used in messages.
    pub file: String,
    /// Every diagnostic (errors and warnings).
    pub diagnostics: Vec<Diagnostic>,
}

fn first_error(ds: &[Diagnostic]) -> String {
    let mut errors = ds.iter().filter(|d| d.is_error());
    let first = errors.next().map_or_else(String::new, |d| {
        if d.path.is_empty() {
            d.message.clone()
        } else {
            format!("{}: {}", d.path, d.message)
        }
    });
    match errors.count() {
        0 => first,
        n => format!("{first} (and {n} more)"),
    }
}

/// Validates `source` and returns the resolved config, or every diagnostic.
pub fn resolve(source: &str) -> Result<ResolvedApp, InvalidConfig> {
    let v = validate(source);
    match v.resolved {
        Some(r) => Ok(r),
        None => Err(InvalidConfig {
            file: APP_TOML.to_string(),
            diagnostics: v.diagnostics,
        }),
    }
}

/// Why an app.toml could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// No app.toml where one was expected.
    #[error("no app config at {}", .path.display())]
    NotFound {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// No `.miren/app.toml` in a directory or any of its parents.
    #[error("no {APP_TOML} in {} or any parent directory", .start.display())]
    NotFoundInParents {
        /// Where the search started.
        start: PathBuf,
    },
    /// It isn't UTF-8 text (TOML is).
    #[error("{} is not UTF-8 text: line {line}, column {column} has a byte that isn't", .path.display())]
    NotText {
        /// The file.
        path: PathBuf,
        /// 1-based line of the first bad byte.
        line: usize,
        /// 1-based column (in bytes) of it.
        column: usize,
    },
    /// It exists but can't be read.
    #[error("cannot read {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The app.toml meant by `path`: the file itself, or `<dir>/.miren/app.toml` (also
/// accepting the `.miren` directory itself).
pub fn app_toml_in(path: &Path) -> PathBuf {
    if path.is_dir() {
        if path.file_name().is_some_and(|n| n == ".miren") && path.join("app.toml").is_file() {
            return path.join("app.toml");
        }
        path.join(APP_TOML)
    } else {
        path.to_path_buf()
    }
}

/// The name of the app directory of the app.toml at `path` (the directory holding
/// `.miren/`, or the file's own directory): what an app without `name` is called.
pub fn dir_name_of(path: &Path) -> Option<String> {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let parent = path.parent()?;
    let dir = if parent.file_name().is_some_and(|n| n == ".miren") {
        parent.parent()?
    } else {
        parent
    };
    dir.file_name().and_then(|n| n.to_str()).map(str::to_string)
}

/// Searches `start` and then its parents for `.miren/app.toml`.
pub fn find_app_toml(start: &Path) -> Result<PathBuf, LoadError> {
    start
        .ancestors()
        .map(|dir| dir.join(APP_TOML))
        .find(|p| p.is_file())
        .ok_or_else(|| LoadError::NotFoundInParents {
            start: start.to_path_buf(),
        })
}

/// Reads an app.toml from disk.
pub fn read(path: &Path) -> Result<String, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            LoadError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            LoadError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|b| **b == b'\n').count() + 1;
        let column = good.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        LoadError::NotText {
            path: path.to_path_buf(),
            line,
            column,
        }
    })
}
