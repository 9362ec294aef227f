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
        Err(e) => return Err(e.into()),
    };
    let file = display_path(&path);
    let v = config::validate(&source);
    let report = v.report(&file, &source);

    let mut stdout = std::io::stdout().lock();
    match format {
        Format::Json => {
            let out = JsonOutput {
                valid: v.is_valid(),
                diagnostics: report.json_diagnostics(),
                resolved: v.resolved.as_ref().filter(|_| args.resolved),
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
                    serde_json::to_writer_pretty(&mut stdout, resolved)?;
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
    match &args.path {
        Some(p) => Ok(config::app_toml_in(p)),
        None => {
            let cwd = std::env::current_dir().map_err(|source| LoadError::Read {
                path: PathBuf::from("."),
                source,
            })?;
            config::find_app_toml(&cwd)
        }
    }
}

/// No file: exit 2 with a way forward.
fn missing(e: &LoadError) -> Exit {
    eprintln!("error: {e}");
    eprintln!(
        "help: run `miren init` to create .miren/app.toml, or pass the app directory: `miren validate path/to/app`"
    );
    Exit::Usage
}
