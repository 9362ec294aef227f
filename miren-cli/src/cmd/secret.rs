//! `miren secret set|list|versions|disable|enable|destroy` (SPEC §17): the server's
//! own secret store. A value is read from a prompt that doesn't echo, from stdin or
//! from a file — never from the command line, where `ps` and shell history would
//! keep it — and never printed.

use std::io::{BufRead, IsTerminal, Write};

use super::listing;
use crate::Exit;
use crate::cli::{Format, SecretCommand};
use crate::client::{Client, ClientError};
use crate::table::{ago, or_dash};

pub async fn run(c: &Client, cmd: SecretCommand, format: Format) -> Result<Exit, ClientError> {
    match cmd {
        SecretCommand::Set { path, value } => {
            let value = read_value(&path, value.as_deref())?;
            let set = c.set_secret(&path, value).await?;
            if format == Format::Json {
                super::print_json(&set)?;
            } else if set.unchanged {
                eprintln!("{path}@{} is unchanged (the same value)", set.version);
            } else {
                eprintln!("stored {path}@{}", set.version);
            }
            Ok(Exit::Ok)
        }
        SecretCommand::List => {
            let rows = c.secrets().await?;
            listing(
                format,
                &rows,
                &["PATH", "BACKEND", "CURRENT", "VERSIONS"],
                |r| {
                    vec![
                        r.path.clone(),
                        r.backend.clone(),
                        or_dash(r.current.as_deref().map(|v| format!("@{v}")).as_deref()),
                        r.versions
                            .iter()
                            .map(|v| match v.disabled {
                                true => format!("@{}(disabled)", v.id),
                                false => format!("@{}", v.id),
                            })
                            .collect::<Vec<_>>()
                            .join(" "),
                    ]
                },
            )
        }
        SecretCommand::Versions { path } => {
            let rows = c.secrets().await?;
            let Some(s) = rows.into_iter().find(|r| r.path == path) else {
                return Err(ClientError::Invalid(format!(
                    "there is no secret `{path}` (see `miren secret list`)"
                )));
            };
            let current = s.current.clone();
            listing(format, &s.versions, &["VERSION", "SET", "STATE"], |v| {
                let state = match (v.disabled, Some(&v.id) == current.as_ref()) {
                    (true, _) => "disabled",
                    (false, true) => "current",
                    (false, false) => "enabled",
                };
                vec![format!("@{}", v.id), ago(v.created), state.into()]
            })
        }
        SecretCommand::Disable { secret } => enable(c, &secret, false, format).await,
        SecretCommand::Enable { secret } => enable(c, &secret, true, format).await,
        SecretCommand::Destroy { secret, yes } => {
            let what = match secret.contains('@') {
                true => format!("version {secret}"),
                false => format!("secret {secret} and every version of it"),
            };
            let question = format!(
                "{what} is deleted for good: whatever still refers to it fails to deploy and to start\nDestroy it?"
            );
            if !crate::ask::confirm(&question, yes)
                .map_err(|e| ClientError::Local(format!("asking: {e}")))?
            {
                eprintln!("nothing was destroyed");
                return Ok(Exit::Failed);
            }
            let v = c.destroy_secret(&secret).await?;
            match format {
                Format::Json => super::print_json(&v)?,
                Format::Table => eprintln!("destroyed {what}"),
            }
            Ok(Exit::Ok)
        }
    }
}

async fn enable(c: &Client, secret: &str, on: bool, format: Format) -> Result<Exit, ClientError> {
    let v = c.enable_secret(secret, on).await?;
    match format {
        Format::Json => super::print_json(&v)?,
        Format::Table => eprintln!("{} {secret}", if on { "enabled" } else { "disabled" }),
    }
    Ok(Exit::Ok)
}

/// The value: `@FILE`'s content, else a prompt that doesn't echo (a terminal), else
/// stdin; one trailing newline trimmed (the usual way a pasted token breaks).
fn read_value(path: &str, given: Option<&str>) -> Result<String, ClientError> {
    let raw = match given {
        Some(v) => {
            let Some(file) = v.strip_prefix('@') else {
                return Err(ClientError::Usage(
                    "--value takes @FILE; give the value itself on stdin or at the prompt, never on the command line".into(),
                ));
            };
            std::fs::read_to_string(file)
                .map_err(|e| ClientError::Usage(format!("reading {file}: {e}")))?
        }
        None if std::io::stdin().is_terminal() => prompt(path)?,
        None => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| ClientError::Local(format!("reading stdin: {e}")))?;
            s
        }
    };
    let value = raw
        .strip_suffix("\r\n")
        .or_else(|| raw.strip_suffix('\n'))
        .unwrap_or(&raw)
        .to_string();
    if value.is_empty() {
        return Err(ClientError::Usage(format!("no value for `{path}`")));
    }
    Ok(value)
}

/// Asks on the terminal with echo off, and puts echo back whatever happens.
fn prompt(path: &str) -> Result<String, ClientError> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let local = |e: std::io::Error| ClientError::Local(format!("reading the value: {e}"));
    let stdin = std::io::stdin();
    let before = tcgetattr(&stdin).map_err(|e| local(e.into()))?;
    let mut quiet = before.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).map_err(|e| local(e.into()))?;
    eprint!("value of {path}: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &before);
    eprintln!();
    read.map_err(local)?;
    Ok(line)
}
