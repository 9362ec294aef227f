//! `miren dashboard`: a one-time login link to the server's web dashboard (its code
//! becomes a session cookie; the link works once, for five minutes).

use super::print_json;
use crate::Exit;
use crate::cli::{DashboardArgs, Format};
use crate::client::{Client, ClientError};

pub async fn run(c: &Client, args: &DashboardArgs, format: Format) -> Result<Exit, ClientError> {
    let login = c.dashboard_login().await?;
    if format == Format::Json {
        print_json(&login)?;
    } else {
        println!("{}", login.url);
        eprintln!(
            "(the link logs one browser in; it works once, within {} minutes)",
            login.expires_in_secs / 60
        );
    }
    if args.open {
        match std::process::Command::new("xdg-open")
            .arg(&login.url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
        {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!("xdg-open failed ({s}): open the link above yourself"),
            Err(e) => eprintln!("could not run xdg-open ({e}): open the link above yourself"),
        }
    }
    Ok(Exit::Ok)
}
