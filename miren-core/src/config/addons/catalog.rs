//! The addons this platform provisions (upstream Miren's, SPEC §17): what each runs,
//! on which port, with which variants and versions, and the variables its services
//! get (upstream's names).

/// What kind of backing service an addon is: how its server is configured and what
/// its services are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// PostgreSQL: `DATABASE_URL`, `PG*`.
    Postgres,
    /// MySQL: `DATABASE_URL`, `MYSQL_*`.
    Mysql,
    /// Valkey (Redis-compatible): `VALKEY_*` and `REDIS_*`.
    Valkey,
    /// RabbitMQ: `RABBITMQ_*`.
    Rabbitmq,
    /// Memcached: `MEMCACHE_*`.
    Memcache,
    /// SQLite: no server; a disk of the services' own, and `DATABASE_URL` to its file.
    Sqlite,
}

/// One addon of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addon {
    /// Its name in app.toml (`miren-postgresql`).
    pub name: &'static str,
    /// What it is, in a few words.
    pub description: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// Variants with what each means; the first is the default.
    pub variants: &'static [(&'static str, &'static str)],
    /// The image its server runs, without a tag (`None`: no server).
    pub image: Option<&'static str>,
    /// The versions upstream supports; the last is the default.
    pub versions: &'static [&'static str],
    /// The port its server listens on.
    pub port: u16,
    /// Where its server keeps its data (`None`: nothing to keep).
    pub data: Option<&'static str>,
}

/// Every addon, in upstream's order.
pub const ADDONS: &[Addon] = &[
    Addon {
        name: "miren-postgresql",
        description: "Managed PostgreSQL database",
        kind: Kind::Postgres,
        variants: &[
            ("small", "a dedicated server for the app, with a 1 GB disk"),
            (
                "shared",
                "upstream's server shared by apps; here the app gets its own, as with `small`",
            ),
        ],
        image: Some("postgres"),
        versions: &["14", "15", "16", "17", "18"],
        port: 5432,
        data: Some("/var/lib/postgresql/data"),
    },
    Addon {
        name: "miren-mysql",
        description: "Managed MySQL database",
        kind: Kind::Mysql,
        variants: &[
            ("small", "a dedicated server for the app, with a 1 GB disk"),
            (
                "shared",
                "upstream's server shared by apps; here the app gets its own, as with `small`",
            ),
        ],
        image: Some("mysql"),
        versions: &["8", "9"],
        port: 3306,
        data: Some("/var/lib/mysql"),
    },
    Addon {
        name: "miren-valkey",
        description: "Managed Valkey key-value store (Redis-compatible)",
        kind: Kind::Valkey,
        variants: &[("small", "a dedicated server for the app, with a 1 GB disk")],
        image: Some("valkey/valkey"),
        versions: &["7", "8", "9"],
        port: 6379,
        data: Some("/data"),
    },
    Addon {
        name: "miren-rabbitmq",
        description: "Managed RabbitMQ message broker",
        kind: Kind::Rabbitmq,
        variants: &[("small", "a dedicated broker for the app, with a 1 GB disk")],
        image: Some("rabbitmq"),
        versions: &["3", "4"],
        port: 5672,
        data: Some("/var/lib/rabbitmq"),
    },
    Addon {
        name: "miren-memcache",
        description: "Managed Memcached in-memory cache",
        kind: Kind::Memcache,
        variants: &[("small", "a dedicated cache for the app")],
        image: Some("memcached"),
        versions: &["1.4", "1.5", "1.6"],
        port: 11211,
        data: None,
    },
    Addon {
        name: "miren-sqlite",
        description: "Embedded SQLite database on a disk of the app's own services",
        kind: Kind::Sqlite,
        variants: &[(
            "standard",
            "a database file on a local disk mounted at /data of each service it attaches to",
        )],
        image: None,
        versions: &[],
        port: 0,
        data: None,
    },
];

/// The addon of this name.
pub fn addon(name: &str) -> Option<&'static Addon> {
    ADDONS.iter().find(|a| a.name == name)
}

impl Addon {
    /// The default variant.
    pub fn default_variant(&self) -> &'static str {
        self.variants.first().map_or("", |(v, _)| v)
    }

    /// Whether it has this variant.
    pub fn has_variant(&self, variant: &str) -> bool {
        self.variants.iter().any(|(v, _)| *v == variant)
    }

    /// The default version.
    pub fn default_version(&self) -> Option<&'static str> {
        self.versions.last().copied()
    }

    /// The image its server runs for `version` (a tag, or a whole reference when it
    /// has a `:`); `None` without a server.
    pub fn image_for(&self, version: Option<&str>) -> Option<String> {
        let base = self.image?;
        Some(match version {
            Some(v) if v.contains(':') => v.to_string(),
            Some(v) => format!("{base}:{v}"),
            None => format!("{base}:{}", self.default_version().unwrap_or("latest")),
        })
    }

    /// Whether its database allows one writer only: the services it attaches to must
    /// run one fixed instance.
    pub fn single_writer(&self) -> bool {
        self.kind == Kind::Sqlite
    }

    /// Whether it runs a server of its own (a service of the app).
    pub fn has_server(&self) -> bool {
        self.image.is_some()
    }
}

/// `miren-sqlite`'s disk: its name, where it is mounted and the database file.
pub const SQLITE_DISK: &str = "sqlite";
/// Where `miren-sqlite`'s disk is mounted.
pub const SQLITE_MOUNT: &str = "/data";
/// The database file on it.
pub const SQLITE_FILE: &str = "data.db";
