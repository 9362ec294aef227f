//! `miren addon list|create|destroy|list-available|variants` (SPEC §17): the addons
//! the platform runs for an app. Creating and destroying one rolls the app's active
//! code out again, with or without the addon's variables.

use super::follow::Follow;
use super::{listing, which};
use crate::Exit;
use crate::api::AddonCreate;
use crate::cli::{AddonCommand, Format};
use crate::client::{Client, ClientError};
use crate::table::or_dash;

pub async fn run(c: &Client, cmd: AddonCommand, format: Format) -> Result<Exit, ClientError> {
    match cmd {
        AddonCommand::List { app } => {
            let rows = c.addons(&which(app)?).await?;
            listing(
                format,
                &rows,
                &[
                    "NAME",
                    "VARIANT",
                    "IMAGE",
                    "STATUS",
                    "SERVICES",
                    "FROM",
                    "VARIABLES",
                ],
                |r| {
                    vec![
                        r.name.clone(),
                        r.variant.clone(),
                        or_dash(r.image.as_deref()),
                        r.status.clone(),
                        if r.services.is_empty() {
                            "(all)".into()
                        } else {
                            r.services.join(",")
                        },
                        if r.from_file {
                            "app.toml"
                        } else {
                            "addon create"
                        }
                        .into(),
                        r.variables.join(" "),
                    ]
                },
            )
        }
        AddonCommand::Create {
            addon,
            app,
            version,
            services,
        } => {
            let app = which(app)?;
            let (name, variant) = match addon.split_once(':') {
                Some((n, v)) if !v.is_empty() => (n.to_string(), Some(v.to_string())),
                Some((n, _)) => (n.to_string(), None),
                None => (addon.clone(), None),
            };
            let body = AddonCreate {
                name: name.clone(),
                variant,
                version,
                services,
            };
            let mut f = Follow::new(format!("added {name}"));
            c.create_addon(&app, &body, |l| f.see(l)).await?;
            f.finish(format)
        }
        AddonCommand::Destroy { addon, app, yes } => {
            let app = which(app)?;
            let rows = c.addons(&app).await?;
            let from_file = rows.iter().any(|r| r.name == addon && r.from_file);
            let mut plan =
                format!("{addon} of app {app} goes, and its data is deleted: this can't be undone");
            if from_file {
                plan.push_str(&format!(
                    "\n.miren/app.toml declares it: the next deploy provisions it again, empty, unless [addons.{addon}] is removed there"
                ));
            }
            if !crate::ask::confirm(&format!("{plan}\nDestroy {addon}?"), yes)
                .map_err(|e| ClientError::Local(format!("asking: {e}")))?
            {
                eprintln!("nothing was destroyed");
                return Ok(Exit::Failed);
            }
            if !crate::ask::interactive() && from_file {
                eprintln!(
                    "note: .miren/app.toml declares {addon}: the next deploy provisions it again"
                );
            }
            let mut f = Follow::new(format!("destroyed {addon}"));
            c.destroy_addon(&app, &addon, |l| f.see(l)).await?;
            f.finish(format)
        }
        AddonCommand::ListAvailable => {
            let rows = c.addon_catalog().await?;
            listing(
                format,
                &rows,
                &["NAME", "VERSIONS", "DEFAULT", "VARIANTS", "DESCRIPTION"],
                |r| {
                    vec![
                        r.name.clone(),
                        if r.versions.is_empty() {
                            "-".into()
                        } else {
                            r.versions.join(", ")
                        },
                        or_dash(r.default_version.as_deref()),
                        r.variants
                            .iter()
                            .map(|(v, _)| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        r.description.clone(),
                    ]
                },
            )
        }
        AddonCommand::Variants { addon } => {
            let rows = c.addon_catalog().await?;
            let Some(a) = rows.iter().find(|r| r.name == addon) else {
                let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
                let hint = miren_core::config::closest(&addon, names.iter().copied())
                    .map(|b| format!("; did you mean `{b}`?"))
                    .unwrap_or_else(|| format!("; the addons are {}", names.join(", ")));
                return Err(ClientError::Invalid(format!(
                    "there is no addon `{addon}`{hint}"
                )));
            };
            let variants: Vec<(String, String, bool)> = a
                .variants
                .iter()
                .map(|(v, d)| (v.clone(), d.clone(), *v == a.default_variant))
                .collect();
            listing(
                format,
                &variants,
                &["VARIANT", "DEFAULT", "WHAT IT IS"],
                |(v, d, def)| vec![v.clone(), if *def { "yes" } else { "" }.into(), d.clone()],
            )
        }
    }
}
