//! `miren sandbox list|stop`.

use super::listing;
use crate::Exit;
use crate::cli::{Format, SandboxCommand};
use crate::client::{Client, ClientError};

pub async fn run(c: &Client, cmd: SandboxCommand, format: Format) -> Result<Exit, ClientError> {
    match cmd {
        SandboxCommand::Exec { id, attach } => super::attach::exec_in(c, &id, attach).await,
        SandboxCommand::List { app, status } => {
            let app = app.or_else(|| crate::here::app(None).ok());
            let items = c.sandboxes(app.as_deref(), status.as_deref()).await?;
            listing(
                format,
                &items,
                &[
                    "ID", "SERVICE", "POOL", "ADDRESS", "STATUS", "RESTARTS", "AGE", "RUNTIME",
                ],
                |s| {
                    let status = s.status.as_str().to_string();
                    vec![
                        s.id.to_string(),
                        s.service.clone(),
                        s.pool.to_string(),
                        s.address.map_or_else(|| "-".into(), |a| a.to_string()),
                        match (&s.reason, &s.health) {
                            (_, Some(h)) if status == "running" => {
                                format!("running (unhealthy: {h})")
                            }
                            (Some(r), _) if status != "running" => format!("{status} ({r})"),
                            _ => status,
                        },
                        s.restarts.to_string(),
                        crate::table::age(s.created),
                        s.runtime.clone().unwrap_or_else(|| "-".into()),
                    ]
                },
            )
        }
        SandboxCommand::Stop { id } => {
            let id = c.stop_sandbox(&id).await?;
            if format == Format::Json {
                super::print_json(&serde_json::json!({ "stopped": id }))?;
            } else {
                eprintln!("stopped {id}; its pool starts a replacement");
            }
            Ok(Exit::Ok)
        }
    }
}
