//! Upstream Miren's own app.toml examples (its docs: the app.toml reference, traffic
//! routing, addons, secrets, static files), copied as upstream publishes them: every
//! one validates here, and the warnings it gets are exactly the ones that say what
//! this platform does differently.

use miren_core::config::{Severity, validate_in};

/// (where upstream shows it, the file, the warnings it gets here)
const EXAMPLES: &[(&str, &str, &[&str])] = &[
    (
        "app-toml.md: file structure",
        r#"name = "myapp"
include = ["configs/"]

[[env]]
key = "DATABASE_URL"
value = "postgres://db.app.miren:5432/myapp"

[build]
version = "3.12"
dockerfile = "Dockerfile.miren"
onbuild = ["npm run build"]

[services.web]
command = "node server.js"
port = 3000

[services.web.concurrency]
mode = "auto"
requests_per_instance = 10
scale_down_delay = "15m"
shutdown_timeout = "10s"

[services.worker]
command = "node worker.js"

[services.worker.concurrency]
mode = "fixed"
num_instances = 2
shutdown_timeout = "10s"

[services.db]
image = "postgres:16"

[[services.db.disks]]
name = "pgdata"
mount_path = "/var/lib/postgresql/data"
size_gb = 20

[tasks.migrate]
command = "bin/rails db:migrate"
trigger = "deploy"

[tasks.cleanup]
command = "bin/cleanup-sessions"
trigger = "schedule"
every = "6h"

[addons.storage]
variant = "minio"

[aliases]
console = "app run bin/rails console"
tail = "logs app -f"
"#,
        &[
            "`build.version` is accepted but not used here",
            "this platform knows no addon `storage`: a deploy of this file fails",
        ],
    ),
    (
        "app-toml.md: env",
        r#"[[env]]
key = "DATABASE_URL"
value = "postgres://db.app.miren:5432/myapp"

[[env]]
key = "SECRET_KEY"
required = true
sensitive = true
description = "Used for session signing"

[[env]]
key = "STRIPE_API_KEY"
backend = "cluster"
ref = "payments/stripe-key"
"#,
        &[
            "no `name`: the app is `corpus`, after its directory",
            "no services defined: a `web` service with all defaults is implied",
        ],
    ),
    (
        "app-toml.md: services",
        r#"[services.web]
command = "node server.js"
port = 3000
port_name = "http"
port_type = "http"

[services.postgres]
image = "postgres:16"
args = ["postgres", "-c", "shared_buffers=256MB"]
"#,
        &["no `name`: the app is `corpus`, after its directory"],
    ),
    (
        "app-toml.md: metrics",
        r#"name = "m"
[services.web]
command = "node server.js"

[services.web.metrics]
enabled = true
path = "/metrics"
port = 3000
interval = "30s"
public = false
"#,
        &["`web`'s metrics are not scraped: this server has no metrics pipeline yet"],
    ),
    (
        "app-toml.md: ports",
        r#"name = "p"
[services.app]
command = "./server"

[[services.app.ports]]
port = 3000
name = "http"
type = "http"

[[services.app.ports]]
port = 7000
name = "data"
type = "tcp"
node_port = 7000
"#,
        &[],
    ),
    (
        "app-toml.md: disks",
        r#"name = "d"
[services.web]
command = "w"

[[services.web.disks]]
name = "data"
provider = "local"
mount_path = "/miren/data/local"

[services.db]
image = "postgres:16"

[[services.db.disks]]
name = "pgdata"
mount_path = "/var/lib/postgresql/data"
size_gb = 20
filesystem = "ext4"
"#,
        &["`filesystem = \"ext4\"` is recorded but not applied here"],
    ),
    (
        "app-toml.md: tasks",
        r#"name = "t"
[services.web]
command = "bin/rails server"

[tasks.migrate]
command = "bin/rails db:migrate"
trigger = "deploy"
timeout = "10m"

[tasks.cleanup]
command = "bin/cleanup-sessions"
trigger = "schedule"
every = "6h"
retries = 2

[tasks.reindex]
command = "bin/reindex"
timeout = "4h"
max_concurrent = 4

[[tasks.reindex.env]]
key = "BATCH_SIZE"
value = "500"
"#,
        &[],
    ),
    (
        "app-toml.md: addons",
        r#"name = "a"
[services.web]
command = "npm start"

[addons.miren-postgresql]
variant = "small"
version = "16"
"#,
        &[],
    ),
    (
        "app-toml.md: aliases",
        r#"name = "al"
[services.web]
command = "bin/rails server"

[aliases]
"x tail" = "logs app -f"
"x console" = "app run bin/rails console"
"#,
        &[],
    ),
    (
        "app-toml.md: static",
        r#"name = "st"
[static]
dir = "/app/public"
error_page = "errors/error.html"
"#,
        &[],
    ),
    (
        "traffic-routing.md: IRC server",
        r#"name = "irc"

[services.irc]
command = "./ircd"

[[services.irc.ports]]
port = 6667
name = "irc"
type = "tcp"
node_port = 6667

[[services.irc.ports]]
port = 6697
name = "irc-tls"
type = "tcp"
node_port = 6697
"#,
        &[],
    ),
    (
        "traffic-routing.md: game server",
        r#"name = "gameserver"

[services.game]
command = "./server"

[[services.game.ports]]
port = 3000
name = "admin"
type = "http"

[[services.game.ports]]
port = 27015
name = "game"
type = "udp"
node_port = 27015

[services.game.concurrency]
mode = "fixed"
num_instances = 1
"#,
        &[],
    ),
    (
        "traffic-routing.md: DNS on TCP and UDP",
        r#"name = "dns"
[services.dns]
command = "./dns"

[[services.dns.ports]]
port = 53
name = "dns-udp"
type = "udp"
node_port = 53

[[services.dns.ports]]
port = 53
name = "dns-tcp"
type = "tcp"
node_port = 5353
"#,
        &[],
    ),
    (
        "traffic-routing.md: choosing a port",
        r#"[services.web]
command = "gunicorn app:app --bind 0.0.0.0:8000"
port = 8000
"#,
        &[
            "no `name`: the app is `corpus`, after its directory",
            "`web` binds the fixed port 8000: on the process runtime each instance listens on its own $PORT in its place",
        ],
    ),
    (
        "addons.md: bun and PostgreSQL",
        r#"name = "my-bun-app"

[services.web]
command = "bun run index.ts"

[addons.miren-postgresql]
variant = "shared"
"#,
        &["`miren-postgresql` is not shared between apps here: the app gets a server of its own"],
    ),
    (
        "addons.md: a custom image",
        r#"[addons.miren-postgresql]
variant = "small"
version = "registry.example.com/custom-postgres:16-custom"
"#,
        &[
            "no `name`: the app is `corpus`, after its directory",
            "no services defined: a `web` service with all defaults is implied",
        ],
    ),
    (
        "secrets.md: a build secret",
        r#"[build]
dockerfile = "Dockerfile"

[[build.secrets]]
id = "npm_token"
backend = "cluster"
ref = "registry/npm-token"
"#,
        &[
            "no `name`: the app is `corpus`, after its directory",
            "no services defined: a `web` service with all defaults is implied",
        ],
    ),
];

#[test]
fn upstreams_documented_examples_validate_with_what_differs_said() {
    let dir = "corpus";
    let mut wrong = Vec::new();
    for (what, file, want) in EXAMPLES {
        let v = validate_in(file, Some(dir));
        let errors: Vec<&str> = v.errors().map(|d| d.message.as_str()).collect();
        if !errors.is_empty() {
            wrong.push(format!("{what}: rejected: {errors:?}"));
            continue;
        }
        let warnings: Vec<&str> = v
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .map(|d| d.message.as_str())
            .collect();
        if warnings != *want {
            wrong.push(format!("{what}: warnings {warnings:#?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
