//! `miren node list`.

use super::listing;
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
    }
}
