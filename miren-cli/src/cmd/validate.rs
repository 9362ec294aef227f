//! `miren validate [PATH] [--resolved]`.

use std::io::Write;
use std::path::PathBuf;

use miren_core::config::{self, LoadError};
use serde::Serialize;

use crate::Exit;
use crate::cli::{ColorChoice, Format, ValidateArgs};
use crate::output::{display_path, stderr_color};

/// The JSON document of SPEC §11.
#[derive(Serialize)]
struct JsonOutput<'a> {
    valid: bool,
    diagnostics: Vec<config::JsonDiagnostic>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved: Option<&'a config::ResolvedApp>,
}

pub fn run(args: &ValidateArgs, format: Format, color: ColorChoice) -> anyhow::Result<Exit> {
    let path = match locate(args) {
        Ok(p) => p,
        Err(e) => return Ok(missing(&e)),
    };
    let source = match config::read(&path) {
        Ok(s) => s,
        Err(e @ LoadError::NotFound { .. }) => return Ok(missing(&e)),
        Err(LoadError::NotText { line, column, .. }) => {
            return not_text(&display_path(&path), line, column, format);
        }
        Err(e) => return Err(e.into()),
    };
    let file = display_path(&path);
    let v = config::validate_in(&source, config::dir_name_of(&path).as_deref());
    let report = v.report(&file, &source);

    let mut stdout = std::io::stdout().lock();
    // `sensitive` values are secrets: not printed, not even here.
    let shown = v
        .resolved
        .clone()
        .map(|r| r.redacted(miren_core::model::SECRET_SHOWN));
    match format {
        Format::Json => {
            let out = JsonOutput {
                valid: v.is_valid(),
                diagnostics: report.json_diagnostics(),
                resolved: shown.as_ref().filter(|_| args.resolved),
            };
            serde_json::to_writer_pretty(&mut stdout, &out)?;
            writeln!(stdout)?;
        }
        Format::Table => {
            let mut stderr = std::io::stderr().lock();
            if !v.diagnostics.is_empty() {
                write!(stderr, "{}", report.render(stderr_color(color)))?;
            }
            if let Some(resolved) = &v.resolved {
                let services: Vec<&str> = resolved.services.keys().map(String::as_str).collect();
                writeln!(
                    stderr,
                    "{file} is valid: app `{}` with {} ({})",
                    resolved.name,
                    plural(services.len(), "service"),
                    services.join(", ")
                )?;
                if args.resolved {
                    serde_json::to_writer_pretty(&mut stdout, &shown)?;
                    writeln!(stdout)?;
                }
            }
        }
    }
    Ok(if v.is_valid() { Exit::Ok } else { Exit::Failed })
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn locate(args: &ValidateArgs) -> Result<PathBuf, LoadError> {
    crate::here::app_toml(args.path.as_deref())
}

/// A file that isn't text is invalid like any other mistake: a diagnostic, exit 1.
fn not_text(file: &str, line: usize, column: usize, format: Format) -> anyhow::Result<Exit> {
    let message = format!("{file} is not UTF-8 text");
    let help = "TOML files are UTF-8: save it as UTF-8 (from Latin-1: `iconv -f latin1 -t utf-8`)";
    match format {
        Format::Json => {
            let out = JsonOutput {
                valid: false,
                diagnostics: vec![config::JsonDiagnostic {
                    severity: config::Severity::Error,
                    message,
                    path: String::new(),
                    line,
                    column,
                    help: Some(help.to_string()),
                }],
                resolved: None,
            };
            let mut stdout = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut stdout, &out)?;
            writeln!(stdout)?;
        }
        Format::Table => {
            eprintln!(
                "error: {message}: the byte at line {line}, column {column} is not UTF-8\n --> {file}:{line}:{column}\n  = help: {help}"
            );
        }
    }
    Ok(Exit::Failed)
}

/// No file: exit 2 with a way forward.
fn missing(e: &LoadError) -> Exit {
    eprintln!("error: {e}");
    eprintln!(
        "help: run `miren init` to create .miren/app.toml, or pass the app directory: `miren validate path/to/app`"
    );
    Exit::Usage
}
