//! `miren node list|drain|undrain`.

use super::{listing, print_json};
use crate::Exit;
use crate::cli::{Format, NodeCommand};
use crate::client::{Client, ClientError};

pub async fn run(c: &Client, cmd: NodeCommand, format: Format) -> Result<Exit, ClientError> {
    match cmd {
        NodeCommand::List => {
            let nodes = c.nodes().await?;
            listing(
                format,
                &nodes,
                &["NAME", "ADDRESS", "STATUS", "SANDBOXES"],
                |n| {
                    vec![
                        n.name.clone(),
                        n.address.clone(),
                        n.status.clone(),
                        n.sandboxes.to_string(),
                    ]
                },
            )
        }
        NodeCommand::Drain { name } => {
            eprintln!("draining node `{name}`: moving its sandboxes one at a time");
            let r = c.drain(&name).await?;
            if format == Format::Json {
                print_json(&r)?;
            } else {
                for id in &r.moved {
                    println!("moved {id}");
                }
                for why in &r.kept {
                    println!("kept {why}");
                }
                println!(
                    "node `{}` is drained: {} sandbox(es) moved, {} kept; nothing new is placed there until `miren node undrain {}`",
                    r.node,
                    r.moved.len(),
                    r.kept.len(),
                    r.node
                );
            }
            Ok(Exit::Ok)
        }
        NodeCommand::Undrain { name } => {
            c.undrain(&name).await?;
            if format == Format::Json {
                print_json(&serde_json::json!({"undrained": name}))?;
            } else {
                println!("node `{name}` takes new sandboxes again");
            }
            Ok(Exit::Ok)
        }
    }
}
