//! `miren schema`.

use std::io::Write;

use crate::Exit;

pub fn run() -> anyhow::Result<Exit> {
    let schema = miren_core::config::json_schema();
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &schema)?;
    writeln!(out)?;
    Ok(Exit::Ok)
}
