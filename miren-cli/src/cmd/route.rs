//! `miren route add|set|list|remove|set-default`.

use hyper::Method;
use miren_core::model::Route;

use super::{listing, q};
use crate::Exit;
use crate::api::RouteBody;
use crate::cli::{Format, RouteCommand};
use crate::client::{Client, ClientError};

pub async fn run(c: &Client, cmd: RouteCommand, format: Format) -> Result<Exit, ClientError> {
    let put = |host: String, app: String, default: bool| async move {
        let r: Route = c
            .call(
                Method::PUT,
                &format!("/v1/routes/{}", q(&host)),
                Some(&RouteBody { app, default }),
            )
            .await?;
        Ok::<_, ClientError>(r)
    };
    match cmd {
        RouteCommand::Add { host, app } | RouteCommand::Set { host, app } => {
            let r = put(host, app, false).await?;
            eprintln!("{} → {}", r.host, r.app);
            Ok(Exit::Ok)
        }
        RouteCommand::SetDefault { app } => {
            let r = put("*".into(), app, true).await?;
            eprintln!("hosts without a route of their own → {}", r.app);
            Ok(Exit::Ok)
        }
        RouteCommand::List => {
            let routes: Vec<Route> = c.get("/v1/routes").await?;
            listing(format, &routes, &["HOST", "APP", "DEFAULT"], |r| {
                vec![
                    r.host.clone(),
                    r.app.clone(),
                    if r.default { "yes" } else { "" }.to_string(),
                ]
            })
        }
        RouteCommand::Remove { host } => {
            let _: serde_json::Value = c
                .call::<(), _>(Method::DELETE, &format!("/v1/routes/{}", q(&host)), None)
                .await?;
            eprintln!("removed the route for {host}");
            Ok(Exit::Ok)
        }
    }
}
