//! `miren sandbox list|stop`.

use hyper::Method;
use miren_core::model::Sandbox;

use super::{listing, q};
use crate::Exit;
use crate::cli::{Format, SandboxCommand};
use crate::client::{Client, ClientError};

pub async fn run(c: &Client, cmd: SandboxCommand, format: Format) -> Result<Exit, ClientError> {
    match cmd {
        SandboxCommand::List { app, status } => {
            let mut query = Vec::new();
            if let Some(a) = &app {
                query.push(format!("app={}", q(a)));
            }
            if let Some(s) = &status {
                query.push(format!("status={}", q(s)));
            }
            let path = if query.is_empty() {
                "/v1/sandboxes".to_string()
            } else {
                format!("/v1/sandboxes?{}", query.join("&"))
            };
            let items: Vec<Sandbox> = c.get(&path).await?;
            listing(
                format,
                &items,
                &["ID", "SERVICE", "POOL", "ADDRESS", "STATUS"],
                |s| {
                    let status = format!("{:?}", s.status).to_lowercase();
                    vec![
                        s.id.to_string(),
                        s.service.clone(),
                        s.pool.to_string(),
                        s.address.map_or_else(|| "-".into(), |a| a.to_string()),
                        match &s.reason {
                            Some(r) if status != "running" => format!("{status} ({r})"),
                            _ => status,
                        },
                    ]
                },
            )
        }
        SandboxCommand::Stop { id } => {
            let _: serde_json::Value = c
                .call::<(), _>(
                    Method::POST,
                    &format!("/v1/sandboxes/{}/stop", q(&id)),
                    None,
                )
                .await?;
            eprintln!("stopped {id}; its pool starts a replacement");
            Ok(Exit::Ok)
        }
    }
}
