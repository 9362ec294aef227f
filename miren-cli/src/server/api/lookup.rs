//! What a request names, found in the state (SPEC §11): apps, services and hosts by
//! name with "did you mean", ids by any unique prefix or suffix, versions also by
//! their number (`v3`). An unknown name is a 404 — never an empty listing that looks
//! like an answer — and an ambiguous id lists what it matches.

use miren_core::config::closest;
use miren_core::controller::Snapshot;
use miren_core::model::{PoolId, SandboxId, VersionId};

use super::extract::clip;
use super::{ApiError, R, S, app_name};

/// The whole state, after checking that `app` is one of its apps.
pub async fn app(state: &S, app: &str) -> R<Snapshot> {
    app_name(app)?;
    let all = state.controller.snapshot(None).await?;
    if all.apps.iter().any(|a| a.name == app) {
        return Ok(all);
    }
    let names: Vec<&str> = all.apps.iter().map(|a| a.name.as_str()).collect();
    Err(ApiError::not_found(unknown("app", app, &names, "apps")))
}

/// Checks that `service` is one of `app`'s (in any of its versions).
pub fn service(s: &Snapshot, app: &str, service: &str) -> R<()> {
    let mut names: Vec<&str> = s
        .versions
        .iter()
        .filter(|v| v.app == app)
        .flat_map(|v| v.config.services.keys().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.contains(&service) {
        return Ok(());
    }
    Err(ApiError::not_found(unknown(
        &format!("service of app `{app}`"),
        service,
        &names,
        "its services",
    )))
}

/// The sandbox `given` names: its id, or a unique prefix or suffix of one (only among
/// those starting or running when `stoppable`).
pub fn sandbox(s: &Snapshot, given: &str, stoppable: bool) -> R<Option<SandboxId>> {
    use miren_core::model::SandboxStatus::{Pending, Running};
    let ids = s
        .sandboxes
        .iter()
        .filter(|x| !stoppable || matches!(x.status, Pending | Running))
        .map(|x| x.id.as_str());
    match one_of("sandbox", given, ids)? {
        Some(id) => Ok(Some(parse(id)?)),
        None => Ok(None),
    }
}

/// The pool `given` names (id, prefix or suffix).
pub fn pool(s: &Snapshot, given: &str) -> R<PoolId> {
    let ids = s.pools.iter().map(|p| p.id.as_str());
    match one_of("pool", given, ids)? {
        Some(id) => parse(id),
        None => Err(ApiError::not_found(format!(
            "no pool `{}`: `miren sandbox-pool list` shows them",
            clip(given)
        ))),
    }
}

/// The version of `app` that `given` names: `v3` or `3` (its number), its id, or a
/// unique prefix or suffix of the id.
pub fn version(s: &Snapshot, app: &str, given: &str) -> R<VersionId> {
    let of_app: Vec<_> = s.versions.iter().filter(|v| v.app == app).collect();
    let number = given.strip_prefix('v').unwrap_or(given);
    if let Ok(n) = number.parse::<u32>()
        && n > 0
    {
        return of_app
            .iter()
            .find(|v| v.number == n)
            .map(|v| v.id.clone())
            .ok_or_else(|| {
                let newest = of_app.iter().map(|v| v.number).max().unwrap_or(0);
                ApiError::not_found(format!(
                    "app `{app}` has no version v{n}: its versions go up to v{newest} (`miren app history -a {app}`)"
                ))
            });
    }
    match one_of("version", given, of_app.iter().map(|v| v.id.as_str()))? {
        Some(id) => parse(id),
        None => Err(ApiError::not_found(format!(
            "app `{app}` has no version `{}`: `miren app history -a {app}` lists them",
            clip(given)
        ))),
    }
}

/// The host of a route, with "did you mean" when there is none.
pub fn route_host(s: &Snapshot, host: &str) -> R<()> {
    if s.routes.iter().any(|r| r.host == host) {
        return Ok(());
    }
    let hosts: Vec<&str> = s.routes.iter().map(|r| r.host.as_str()).collect();
    Err(ApiError::not_found(unknown(
        "route for",
        host,
        &hosts,
        "routed hosts",
    )))
}

/// The id among `ids` that `given` names: itself, or the one it starts or ends.
/// `None` when none does; an error when several do.
pub fn one_of<'a>(
    kind: &str,
    given: &str,
    ids: impl IntoIterator<Item = &'a str>,
) -> R<Option<&'a str>> {
    if given.is_empty() {
        return Err(ApiError::invalid(format!("an empty {kind} id")));
    }
    let mut found: Vec<&str> = Vec::new();
    for id in ids {
        if id == given {
            return Ok(Some(id));
        }
        if (id.starts_with(given) || id.ends_with(given)) && !found.contains(&id) {
            found.push(id);
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(Some(found[0])),
        n => {
            let shown: Vec<&str> = found.iter().take(5).copied().collect();
            Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "ambiguous",
                format!(
                    "`{}` matches {n} {kind}{}: {}{}; give more of the id",
                    clip(given),
                    if kind.ends_with('x') { "es" } else { "s" },
                    shown.join(", "),
                    if n > shown.len() { ", …" } else { "" }
                ),
            ))
        }
    }
}

/// "no app `pyap`; did you mean `pyapp`?" (or what there is).
pub fn unknown(kind: &str, given: &str, names: &[&str], plural: &str) -> String {
    let given_c = clip(given);
    match closest(given, names.iter().copied()) {
        Some(c) => format!("no {kind} `{given_c}`: did you mean `{c}`?"),
        None if names.is_empty() => format!("no {kind} `{given_c}` (there are none yet)"),
        None if names.len() <= 10 => {
            format!("no {kind} `{given_c}`: {plural} are {}", names.join(", "))
        }
        None => format!("no {kind} `{given_c}`"),
    }
}

fn parse<T: std::str::FromStr>(s: &str) -> R<T>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| ApiError::internal(format!("a stored id: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_found_by_a_unique_prefix_or_suffix() -> Result<(), String> {
        let ids = ["shop-web-1AAAxyz", "shop-web-1AABqrs", "shop-db-1AACxyz"];
        let find = |g: &str| one_of("sandbox", g, ids).map_err(|e| format!("{e:?}"));
        assert_eq!(find("shop-web-1AAAxyz")?, Some("shop-web-1AAAxyz"));
        assert_eq!(find("qrs")?, Some("shop-web-1AABqrs"));
        assert_eq!(find("shop-db")?, Some("shop-db-1AACxyz"));
        assert_eq!(find("nothing")?, None);
        let err = find("xyz").err().unwrap_or_default();
        assert!(err.contains("matches 2 sandboxes"), "{err}");
        Ok(())
    }

    #[test]
    fn an_unknown_name_says_what_was_meant_or_what_there_is() {
        assert_eq!(
            unknown("app", "pyap", &["pyapp", "web"], "apps"),
            "no app `pyap`: did you mean `pyapp`?"
        );
        assert_eq!(
            unknown("app", "zzzzzz", &["pyapp", "web"], "apps"),
            "no app `zzzzzz`: apps are pyapp, web"
        );
        assert_eq!(
            unknown("app", "x", &[], "apps"),
            "no app `x` (there are none yet)"
        );
    }
}
