//! A resolved config with an app's addons in it: each addon server is a service of
//! the app (named after the addon, one fixed instance, its image, its disk, its
//! credentials as secrets), and the services it attaches to get its variables under
//! upstream's names — where app.toml doesn't set the same key itself (the file
//! wins; `miren env set` wins over both).

use std::time::Duration;

use indexmap::IndexMap;
use thiserror::Error;

use super::AddonInstance;
use super::catalog::{Addon, Kind, SQLITE_DISK, SQLITE_FILE, SQLITE_MOUNT, addon};
use crate::config::{Concurrency, Disk, DiskProvider, ResolvedApp, ResolvedService};

/// How long an addon server may take to listen: its first start makes its database
/// (and may pull its image).
const SERVER_PORT_TIMEOUT: Duration = Duration::from_secs(180);
/// A database server's grace to flush and stop.
const SERVER_SHUTDOWN: Duration = Duration::from_secs(30);
/// Size of an addon server's disk (upstream's `small`).
const SERVER_DISK_GB: u32 = 1;

/// Why an app's addons can't be added to its config.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddonError {
    /// No such addon in the catalog.
    #[error("this server has no addon `{0}`; it has {list}", list = super::ADDONS.iter().map(|a| a.name).collect::<Vec<_>>().join(", "))]
    Unknown(String),
    /// The app has a service of the addon's name.
    #[error(
        "addon `{0}` runs as a service of that name, and the app has a service `{0}` already: rename the service"
    )]
    NameTaken(String),
    /// The addon names a service the app doesn't have.
    #[error("addon `{addon}` attaches to service `{service}`, which the app doesn't have")]
    NoService {
        /// The addon.
        addon: String,
        /// The service it names.
        service: String,
    },
    /// A service it attaches to has a disk of the name the addon's disk takes.
    #[error(
        "addon `{addon}` mounts its disk `{disk}` into `{service}`, which has a disk of that name already"
    )]
    DiskTaken {
        /// The addon.
        addon: String,
        /// The service.
        service: String,
        /// The disk's name.
        disk: String,
    },
}

/// `config` with `instances` in it (see the module's doc). `config` is the file's;
/// the result is what the app's version runs.
pub fn expand(
    config: &ResolvedApp,
    instances: &[AddonInstance],
) -> Result<ResolvedApp, AddonError> {
    let mut out = config.clone();
    for inst in instances {
        let a = addon(&inst.name).ok_or_else(|| AddonError::Unknown(inst.name.clone()))?;
        let targets: Vec<String> = if inst.services.is_empty() {
            config.services.keys().cloned().collect()
        } else {
            inst.services.clone()
        };
        for t in &targets {
            if !config.services.contains_key(t) {
                return Err(AddonError::NoService {
                    addon: inst.name.clone(),
                    service: t.clone(),
                });
            }
        }
        let host = format!("{}.app.miren", inst.name);
        let vars = client_env(a.kind, &host, a.port, inst);
        for t in &targets {
            let Some(svc) = out.services.get_mut(t) else {
                continue;
            };
            if a.kind == Kind::Sqlite {
                if svc.disks.iter().any(|d| d.name == SQLITE_DISK) {
                    return Err(AddonError::DiskTaken {
                        addon: inst.name.clone(),
                        service: t.clone(),
                        disk: SQLITE_DISK.to_string(),
                    });
                }
                svc.disks.push(Disk {
                    name: SQLITE_DISK.to_string(),
                    mount_path: SQLITE_MOUNT.to_string(),
                    size_gb: 0,
                    read_only: false,
                    provider: DiskProvider::Local,
                    filesystem: None,
                    owner: None,
                });
            }
            inject(&mut svc.env, &vars);
        }
        // Without a service (tasks of no service, `app run` of an app without web),
        // the app-wide env is what runs: it gets them when every service does.
        if inst.services.is_empty() {
            inject(&mut out.env, &vars);
        }
        for (k, _, secret) in &vars {
            if *secret {
                out.sensitive_env.insert(k.clone());
            }
        }
        if a.has_server() {
            if config.services.contains_key(&inst.name) {
                return Err(AddonError::NameTaken(inst.name.clone()));
            }
            let (server, secrets) = server(a, inst);
            out.sensitive_env.extend(secrets);
            out.services.insert(inst.name.clone(), server);
        }
    }
    Ok(out)
}

/// Adds `vars` to `env` where it has no such key.
fn inject(env: &mut IndexMap<String, String>, vars: &[(String, String, bool)]) {
    for (k, v, _) in vars {
        env.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// What the services an addon attaches to are told, under upstream's names:
/// (key, value, whether it is a secret).
pub fn client_env(
    kind: Kind,
    host: &str,
    port: u16,
    i: &AddonInstance,
) -> Vec<(String, String, bool)> {
    let (user, pass, db) = (&i.user, &i.password, &i.database);
    let v = |k: &str, v: String, secret: bool| (k.to_string(), v, secret);
    match kind {
        Kind::Postgres => vec![
            v(
                "DATABASE_URL",
                format!("postgres://{user}:{pass}@{host}:{port}/{db}"),
                true,
            ),
            v("PGHOST", host.to_string(), false),
            v("PGPORT", port.to_string(), false),
            v("PGUSER", user.clone(), false),
            v("PGPASSWORD", pass.clone(), true),
            v("PGDATABASE", db.clone(), false),
        ],
        Kind::Mysql => vec![
            v(
                "DATABASE_URL",
                format!("mysql://{user}:{pass}@{host}:{port}/{db}"),
                true,
            ),
            v("MYSQL_HOST", host.to_string(), false),
            v("MYSQL_PORT", port.to_string(), false),
            v("MYSQL_USER", user.clone(), false),
            v("MYSQL_PASSWORD", pass.clone(), true),
            v("MYSQL_DATABASE", db.clone(), false),
        ],
        Kind::Valkey => {
            let url = format!("redis://:{pass}@{host}:{port}");
            let mut out = Vec::new();
            for p in ["VALKEY", "REDIS"] {
                out.push(v(&format!("{p}_URL"), url.clone(), true));
                out.push(v(&format!("{p}_HOST"), host.to_string(), false));
                out.push(v(&format!("{p}_PORT"), port.to_string(), false));
                out.push(v(&format!("{p}_PASSWORD"), pass.clone(), true));
            }
            out
        }
        Kind::Rabbitmq => vec![
            v(
                "RABBITMQ_URL",
                format!("amqp://{user}:{pass}@{host}:{port}/%2F"),
                true,
            ),
            v("RABBITMQ_HOST", host.to_string(), false),
            v("RABBITMQ_PORT", port.to_string(), false),
            v("RABBITMQ_USER", user.clone(), false),
            v("RABBITMQ_PASSWORD", pass.clone(), true),
            v("RABBITMQ_VHOST", "/".to_string(), false),
        ],
        Kind::Memcache => vec![
            v("MEMCACHE_URL", format!("memcache://{host}:{port}"), false),
            v("MEMCACHE_HOST", host.to_string(), false),
            v("MEMCACHE_PORT", port.to_string(), false),
        ],
        Kind::Sqlite => vec![v(
            "DATABASE_URL",
            format!("sqlite://{SQLITE_MOUNT}/{SQLITE_FILE}"),
            false,
        )],
    }
}

/// The service an addon's server is, and the keys of its env that are secrets.
fn server(a: &Addon, i: &AddonInstance) -> (ResolvedService, Vec<String>) {
    let (user, pass, db) = (&i.user, &i.password, &i.database);
    let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
    let (env, secrets, command): (Vec<(String, String)>, &[&str], Option<&str>) = match a.kind {
        Kind::Postgres => (
            vec![
                kv("POSTGRES_USER", user),
                kv("POSTGRES_PASSWORD", pass),
                kv("POSTGRES_DB", db),
                // A directory of the disk, not its root: initdb wants an empty one.
                kv(
                    "PGDATA",
                    &format!("{}/pgdata", a.data.unwrap_or("/var/lib/postgresql/data")),
                ),
            ],
            &["POSTGRES_PASSWORD"],
            None,
        ),
        Kind::Mysql => (
            vec![
                kv("MYSQL_USER", user),
                kv("MYSQL_PASSWORD", pass),
                kv("MYSQL_DATABASE", db),
                kv("MYSQL_ROOT_PASSWORD", pass),
            ],
            &["MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD"],
            None,
        ),
        // Valkey's image, or a Redis one given as the version: whichever server it has.
        Kind::Valkey => (
            vec![kv("VALKEY_PASSWORD", pass)],
            &["VALKEY_PASSWORD"],
            Some(
                "exec \"$(command -v valkey-server || command -v redis-server)\" --requirepass \"$VALKEY_PASSWORD\" --appendonly yes --dir /data --bind 0.0.0.0 --protected-mode no",
            ),
        ),
        Kind::Rabbitmq => (
            vec![
                kv("RABBITMQ_DEFAULT_USER", user),
                kv("RABBITMQ_DEFAULT_PASS", pass),
            ],
            &["RABBITMQ_DEFAULT_PASS"],
            None,
        ),
        Kind::Memcache | Kind::Sqlite => (Vec::new(), &[], None),
    };
    let disks = match (a.data, &i.disk) {
        (Some(path), Some(name)) => vec![Disk {
            name: name.clone(),
            mount_path: path.to_string(),
            size_gb: SERVER_DISK_GB,
            read_only: false,
            provider: DiskProvider::Miren,
            filesystem: None,
            owner: None,
        }],
        _ => Vec::new(),
    };
    let service = ResolvedService {
        command: command.map(str::to_string),
        args: Vec::new(),
        image: a.image_for(i.version.as_deref()),
        port: Some(a.port),
        port_name: None,
        port_type: None,
        node_port: None,
        extra_ports: Vec::new(),
        env: env.into_iter().collect(),
        concurrency: Concurrency::Fixed { num_instances: 1 },
        disks,
        port_timeout: SERVER_PORT_TIMEOUT,
        shutdown_timeout: SERVER_SHUTDOWN,
        health: None,
        required_env: IndexMap::new(),
        addon: Some(i.name.clone()),
        secret_refs: IndexMap::new(),
    };
    (service, secrets.iter().map(|s| s.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::resolve;

    fn instance(name: &str, services: &[&str]) -> AddonInstance {
        AddonInstance {
            name: name.into(),
            variant: "small".into(),
            version: None,
            services: services.iter().map(|s| s.to_string()).collect(),
            from_file: true,
            user: "shop".into(),
            password: "s3cret".into(),
            database: "shop".into(),
            disk: Some(format!("{name}-abc123")),
            created: 0,
        }
    }

    const APP: &str = "name = \"shop\"\n[[services.web.env]]\nkey = \"PGUSER\"\nvalue = \"mine\"\n[services.web]\ncommand = \"w\"\n[services.worker]\ncommand = \"k\"\n";

    #[test]
    fn a_server_addon_is_a_service_and_its_variables_reach_every_service() {
        let config = resolve(APP).unwrap_or_else(|e| panic!("{e}"));
        let out =
            expand(&config, &[instance("miren-postgresql", &[])]).unwrap_or_else(|e| panic!("{e}"));
        let pg = &out.services["miren-postgresql"];
        assert_eq!(pg.image.as_deref(), Some("postgres:18"));
        assert_eq!(pg.port, Some(5432));
        assert_eq!(pg.addon.as_deref(), Some("miren-postgresql"));
        assert_eq!(pg.concurrency, Concurrency::Fixed { num_instances: 1 });
        assert_eq!(pg.disks[0].name, "miren-postgresql-abc123");
        assert_eq!(pg.env["POSTGRES_PASSWORD"], "s3cret");
        for svc in ["web", "worker"] {
            assert_eq!(
                out.services[svc].env["DATABASE_URL"],
                "postgres://shop:s3cret@miren-postgresql.app.miren:5432/shop"
            );
            assert_eq!(
                out.services[svc].env["PGHOST"],
                "miren-postgresql.app.miren"
            );
        }
        // app.toml's own value wins.
        assert_eq!(out.services["web"].env["PGUSER"], "mine");
        assert_eq!(out.services["worker"].env["PGUSER"], "shop");
        for secret in ["DATABASE_URL", "PGPASSWORD", "POSTGRES_PASSWORD"] {
            assert!(out.sensitive_env.contains(secret), "{secret}");
        }
        assert!(!out.sensitive_env.contains("PGHOST"));
        // The file's config is untouched.
        assert!(!config.services.contains_key("miren-postgresql"));
    }

    #[test]
    fn an_addon_reaches_only_the_services_it_names() {
        let config = resolve(APP).unwrap_or_else(|e| panic!("{e}"));
        let out = expand(&config, &[instance("miren-valkey", &["worker"])])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!out.services["web"].env.contains_key("REDIS_URL"));
        assert_eq!(
            out.services["worker"].env["REDIS_URL"],
            "redis://:s3cret@miren-valkey.app.miren:6379"
        );
        assert_eq!(
            out.services["worker"].env["VALKEY_URL"],
            out.services["worker"].env["REDIS_URL"]
        );
        assert!(out.env.is_empty(), "not every service: not app-wide");
    }

    #[test]
    fn sqlite_is_a_local_disk_of_the_services_and_no_server() {
        let config = resolve(APP).unwrap_or_else(|e| panic!("{e}"));
        let mut sqlite = instance("miren-sqlite", &["worker"]);
        sqlite.disk = None;
        let out = expand(&config, &[sqlite]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.services.len(), 2, "no server");
        let worker = &out.services["worker"];
        assert_eq!(worker.env["DATABASE_URL"], "sqlite:///data/data.db");
        let disk = &worker.disks[0];
        assert_eq!(
            (disk.name.as_str(), disk.mount_path.as_str(), disk.provider),
            ("sqlite", "/data", DiskProvider::Local)
        );
    }

    #[test]
    fn a_version_with_a_colon_is_the_whole_image() {
        let config = resolve(APP).unwrap_or_else(|e| panic!("{e}"));
        let mut pg = instance("miren-postgresql", &[]);
        pg.version = Some("registry.example.com/pg:16-custom".into());
        let out = expand(&config, &[pg]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            out.services["miren-postgresql"].image.as_deref(),
            Some("registry.example.com/pg:16-custom")
        );
        let mut v16 = instance("miren-postgresql", &[]);
        v16.version = Some("16".into());
        let out = expand(&config, &[v16]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            out.services["miren-postgresql"].image.as_deref(),
            Some("postgres:16")
        );
    }

    #[test]
    fn what_cant_be_expanded_says_why() {
        let config = resolve(APP).unwrap_or_else(|e| panic!("{e}"));
        let e = expand(&config, &[instance("miren-minio", &[])]);
        assert!(
            matches!(&e, Err(AddonError::Unknown(n)) if n == "miren-minio"),
            "{e:?}"
        );
        let e = expand(&config, &[instance("miren-memcache", &["wroker"])]);
        assert!(matches!(e, Err(AddonError::NoService { .. })), "{e:?}");
    }
}
