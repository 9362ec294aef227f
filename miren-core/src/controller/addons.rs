//! An app's addons (SPEC §17): the instances the controller keeps on the [`App`]
//! — made once with their credentials and disk, so every later version runs the same
//! server with the same data — and what a version runs with them in it.
//!
//! A deploy makes the app's addons what app.toml declares (keeping those made by
//! `miren addon create`); `addon create` and `addon destroy` change them and roll
//! out the active code again. A removed addon's disk is retired: the collector
//! deletes it once no pool uses it.

use crate::config::ResolvedApp;
use crate::config::addons::{self, AddonInstance};
use crate::model::App;
use crate::runtime::now_millis;

use super::AddonRequest;

/// A random secret: 122 bits as base58 (nothing a URL would need to escape).
fn secret() -> String {
    crate::model::encode_id(uuid::Uuid::new_v4().into_bytes())
}

/// Makes `name` of `app` with fresh credentials.
fn instance(app: &str, name: &str, request: AddonRequest, from_file: bool) -> AddonInstance {
    let a = addons::addon(name);
    // SQL identifiers and AMQP users without quoting: the app's name with `_`.
    let ident = app.replace('-', "_");
    let variant = request
        .variant
        .unwrap_or_else(|| a.map_or("", |a| a.default_variant()).to_string());
    let disk = a.filter(|a| a.data.is_some()).map(|_| {
        let tag: String = uuid::Uuid::new_v4()
            .into_bytes()
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{name}-{tag}")
    });
    AddonInstance {
        name: name.to_string(),
        variant,
        version: request.version,
        services: request.services,
        from_file,
        user: ident.clone(),
        password: secret(),
        database: ident,
        disk,
        created: now_millis(),
    }
}

/// Makes the app's addons what `declared` (app.toml) says: new ones are made, changed
/// ones keep their credentials and disk, ones the file dropped go (their disks
/// retired); those of `addon create` stay.
pub(super) fn reconcile(app: &mut App, declared: &ResolvedApp) {
    let name = app.name.clone();
    let mut kept: Vec<AddonInstance> = Vec::with_capacity(app.addons.len());
    for inst in std::mem::take(&mut app.addons) {
        match declared.addons.get(&inst.name) {
            Some(d) => kept.push(AddonInstance {
                variant: d.variant.clone(),
                version: d.version.clone(),
                services: d.services.clone(),
                from_file: true,
                ..inst
            }),
            None if inst.from_file => retire(app, &inst),
            None => kept.push(inst),
        }
    }
    for (addon, d) in &declared.addons {
        if !kept.iter().any(|i| &i.name == addon) {
            let request = AddonRequest {
                name: addon.clone(),
                variant: Some(d.variant.clone()),
                version: d.version.clone(),
                services: d.services.clone(),
            };
            kept.push(instance(&name, addon, request, true));
        }
    }
    app.addons = kept;
}

/// Adds the addon `addon create` asks for; an error says why it can't be.
/// `declared`: the active version's app.toml (none before the first deploy: its
/// services are checked by that deploy).
pub(super) fn add(
    app: &mut App,
    declared: Option<&ResolvedApp>,
    r: AddonRequest,
) -> Result<(), String> {
    let Some(a) = addons::addon(&r.name) else {
        let names: Vec<&str> = addons::ADDONS.iter().map(|a| a.name).collect();
        return Err(format!(
            "there is no addon `{}`; the addons are {}",
            r.name,
            names.join(", ")
        ));
    };
    if app.addons.iter().any(|i| i.name == r.name) {
        return Err(format!("app `{}` has `{}` already", app.name, r.name));
    }
    if let Some(v) = &r.variant
        && !a.has_variant(v)
    {
        let variants: Vec<&str> = a.variants.iter().map(|(v, _)| *v).collect();
        return Err(format!(
            "`{}` has no variant `{v}`: it has {}",
            r.name,
            variants.join(", ")
        ));
    }
    if let Some(declared) = declared {
        if a.has_server() && declared.services.contains_key(&r.name) {
            return Err(format!(
                "app `{}` has a service `{}`, the name the addon's server runs as",
                app.name, r.name
            ));
        }
        for s in &r.services {
            if !declared.services.contains_key(s) {
                return Err(format!("app `{}` has no service `{s}`", app.name));
            }
        }
    }
    let name = app.name.clone();
    let inst = instance(&name, &r.name.clone(), r, false);
    app.addons.push(inst);
    Ok(())
}

/// Removes an addon; an error when the app has none of that name.
pub(super) fn remove(app: &mut App, name: &str) -> Result<(), String> {
    let Some(at) = app.addons.iter().position(|i| i.name == name) else {
        let have: Vec<&str> = app.addons.iter().map(|i| i.name.as_str()).collect();
        return Err(match have.is_empty() {
            true => format!("app `{}` has no addons", app.name),
            false => format!(
                "app `{}` has no addon `{name}`; it has {}",
                app.name,
                have.join(", ")
            ),
        });
    };
    let inst = app.addons.remove(at);
    retire(app, &inst);
    Ok(())
}

/// Its disk is deleted once no pool uses it.
fn retire(app: &mut App, inst: &AddonInstance) {
    if let Some(d) = &inst.disk
        && !app.retired_disks.contains(d)
    {
        app.retired_disks.push(d.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::resolve;

    fn app() -> App {
        App::new("shop-front", 0)
    }

    const FILE: &str = "name = \"shop-front\"\n[services.web]\ncommand = \"w\"\n[addons.miren-postgresql]\nversion = \"16\"\n";

    #[test]
    fn credentials_are_made_once_and_kept_across_deploys() {
        let mut a = app();
        let file = resolve(FILE).unwrap_or_else(|e| panic!("{e}"));
        reconcile(&mut a, &file);
        let first = a.addons.clone();
        assert_eq!(first.len(), 1);
        let pg = &first[0];
        assert_eq!(
            (pg.user.as_str(), pg.database.as_str()),
            ("shop_front", "shop_front")
        );
        assert_eq!(pg.password.len(), 22);
        assert!(
            pg.disk
                .as_deref()
                .is_some_and(|d| d.starts_with("miren-postgresql-"))
        );
        // Another deploy, another version: the same instance.
        let v17 = resolve(&FILE.replace("\"16\"", "\"17\"")).unwrap_or_else(|e| panic!("{e}"));
        reconcile(&mut a, &v17);
        assert_eq!(a.addons[0].password, pg.password);
        assert_eq!(a.addons[0].disk, pg.disk);
        assert_eq!(a.addons[0].version.as_deref(), Some("17"));
    }

    #[test]
    fn a_dropped_file_addon_goes_and_a_created_one_stays() {
        let mut a = app();
        let file = resolve(FILE).unwrap_or_else(|e| panic!("{e}"));
        reconcile(&mut a, &file);
        let disk = a.addons[0].disk.clone();
        let request = AddonRequest {
            name: "miren-valkey".into(),
            variant: None,
            version: None,
            services: Vec::new(),
        };
        add(&mut a, Some(&file), request.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert!(add(&mut a, Some(&file), request).is_err(), "twice");
        let without = resolve("name = \"shop-front\"\n[services.web]\ncommand = \"w\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        reconcile(&mut a, &without);
        let names: Vec<&str> = a.addons.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["miren-valkey"]);
        assert_eq!(a.retired_disks, disk.into_iter().collect::<Vec<_>>());
        assert!(remove(&mut a, "miren-valkey").is_ok());
        assert_eq!(a.retired_disks.len(), 2);
        assert!(remove(&mut a, "miren-valkey").is_err());
    }

    #[test]
    fn what_addon_create_cant_do_says_why() {
        let mut a = app();
        let file = resolve("name = \"shop-front\"\n[services.web]\ncommand = \"w\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let ask = |name: &str, variant: Option<&str>, services: &[&str]| AddonRequest {
            name: name.into(),
            variant: variant.map(str::to_string),
            version: None,
            services: services.iter().map(|s| s.to_string()).collect(),
        };
        let e = add(&mut a, Some(&file), ask("miren-mongo", None, &[])).err();
        assert!(e.is_some_and(|e| e.contains("no addon `miren-mongo`")));
        let e = add(&mut a, Some(&file), ask("miren-valkey", Some("huge"), &[])).err();
        assert!(e.is_some_and(|e| e.contains("no variant `huge`")));
        let e = add(&mut a, Some(&file), ask("miren-valkey", None, &["worker"])).err();
        assert!(e.is_some_and(|e| e.contains("no service `worker`")));
        assert!(a.addons.is_empty());
    }
}
