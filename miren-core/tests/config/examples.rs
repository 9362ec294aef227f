//! Every example of the user's document validates, and resolves to what it says.

use std::path::{Path, PathBuf};
use std::time::Duration;

use miren_core::config::{AppConfig, Concurrency, ResolvedApp, Severity, validate};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `examples/<name>/.miren/app.toml`, with its directory name.
pub fn example_files() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dir = workspace().join("examples");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let file = entry.path().join(".miren/app.toml");
        if let Ok(text) = std::fs::read_to_string(&file) {
            out.push((entry.file_name().to_string_lossy().into_owned(), text));
        }
    }
    out.sort();
    out
}

/// Every ```toml block of the Services page. Fragments (a few lines of a larger
/// file) get a name so they stand alone.
fn doc_blocks() -> Vec<String> {
    let doc = std::fs::read_to_string(workspace().join("docs/services.md")).unwrap_or_default();
    doc.split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .map(|block| {
            if block.contains("name = ") && block.trim_start().starts_with("name") {
                block.to_string()
            } else {
                format!("name = \"fragment\"\n{block}")
            }
        })
        .collect()
}

fn resolved(name: &str) -> ResolvedApp {
    let (_, text) = example_files()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no example {name}"));
    validate(&text)
        .resolved
        .unwrap_or_else(|| panic!("{name} is invalid"))
}

#[test]
fn every_seed_example_is_in_examples_and_validates() {
    let files = example_files();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "web-worker",
        "rails-sidekiq",
        "django-celery",
        "postgres-image",
        "fullstack",
        "env-vars",
        "service-communication",
        "node-api",
        "go-postgres",
        "python-redis-queue",
    ] {
        assert!(names.contains(&expected), "examples/{expected} is missing");
    }
    for (name, text) in &files {
        let v = validate(text);
        let errors: Vec<_> = v.errors().map(|d| &d.message).collect();
        assert!(errors.is_empty(), "examples/{name}: {errors:#?}");
    }
}

#[test]
fn every_toml_block_of_the_services_page_validates() {
    let blocks = doc_blocks();
    assert!(
        blocks.len() >= 13,
        "found only {} blocks in docs/services.md",
        blocks.len()
    );
    for block in blocks {
        let v = validate(&block);
        let errors: Vec<_> = v.errors().map(|d| &d.message).collect();
        assert!(errors.is_empty(), "{block}\n{errors:#?}");
    }
}

#[test]
fn fullstack_resolves_as_the_document_describes() {
    let app = resolved("fullstack");
    assert_eq!(app.name, "fullstack");
    let names: Vec<&str> = app.services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["web", "worker", "postgres", "redis"],
        "file order is kept"
    );

    let web = &app.services["web"];
    assert_eq!(web.command.as_deref(), Some("node server.js"));
    assert_eq!(web.port, Some(3000));
    let Concurrency::Auto(auto) = web.concurrency else {
        panic!("web autoscales by default")
    };
    assert_eq!(auto.requests_per_instance, 10);
    assert_eq!(auto.scale_down_delay, Duration::from_secs(15 * 60));
    assert_eq!((auto.min_instances, auto.max_instances), (0, 20));

    assert_eq!(
        app.services["worker"].concurrency,
        Concurrency::Fixed { num_instances: 2 }
    );
    assert_eq!(
        app.services["worker"].port, None,
        "only web has a default port"
    );

    let pg = &app.services["postgres"];
    assert_eq!(pg.image.as_deref(), Some("postgres:16"));
    assert_eq!(
        pg.env.get("POSTGRES_PASSWORD").map(String::as_str),
        Some("secret")
    );
    assert_eq!(pg.disks.len(), 1);
    assert_eq!(pg.disks[0].name, "pg-data");
    assert_eq!(pg.disks[0].mount_path, "/var/lib/postgresql/data");
    assert_eq!(pg.disks[0].size_gb, 50);
    assert!(!pg.disks[0].read_only);

    assert_eq!(
        app.services["redis"].concurrency,
        Concurrency::Fixed { num_instances: 1 }
    );
    assert_eq!(app.dockerfile, "Dockerfile");
}

#[test]
fn app_env_reaches_every_service_and_a_service_env_wins() {
    let app = resolved("env-vars");
    let web = &app.services["web"].env;
    assert_eq!(web.get("LOG_LEVEL").map(String::as_str), Some("info"));
    assert_eq!(web.get("NODE_ENV").map(String::as_str), Some("production"));
    assert!(!web.contains_key("WORKER_CONCURRENCY"));
    let worker = &app.services["worker"].env;
    assert_eq!(worker.get("LOG_LEVEL").map(String::as_str), Some("info"));
    assert_eq!(
        worker.get("WORKER_CONCURRENCY").map(String::as_str),
        Some("5")
    );

    let v = validate(
        "name = \"a\"\n[[env]]\nkey = \"X\"\nvalue = \"app\"\n[[services.web.env]]\nkey = \"X\"\nvalue = \"web\"\n",
    );
    let r = v.resolved.expect("valid");
    assert_eq!(
        r.services["web"].env.get("X").map(String::as_str),
        Some("web")
    );
}

#[test]
fn scaling_settings_of_the_examples_are_kept() {
    let go = resolved("go-postgres");
    let Concurrency::Auto(auto) = go.services["web"].concurrency else {
        panic!("auto")
    };
    assert_eq!(auto.requests_per_instance, 100);
    assert_eq!(auto.scale_down_delay, Duration::from_secs(300));
    assert_eq!(
        resolved("python-redis-queue").services["web"].port,
        Some(8000)
    );
    assert_eq!(
        resolved("rails-sidekiq").services["worker"].concurrency,
        Concurrency::Fixed { num_instances: 2 }
    );
}

#[test]
fn the_fixed_port_examples_warn_and_stay_valid() {
    for name in ["django-celery", "python-redis-queue"] {
        let (_, text) = example_files()
            .into_iter()
            .find(|(n, _)| n == name)
            .expect("example");
        let v = validate(&text);
        assert!(v.is_valid());
        assert!(
            v.diagnostics
                .iter()
                .any(|d| d.severity == Severity::Warning && d.message.contains("fixed port 8000")),
            "{name}: {:#?}",
            v.diagnostics
        );
    }
}

/// The hand-written decoder and serde's derive read valid files the same way, so the
/// types (and the schema derived from them) describe what the decoder accepts.
#[test]
fn the_decoder_agrees_with_serde_on_every_example() {
    for (name, text) in example_files() {
        let ours = validate(&text).config;
        let serde: AppConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ours, serde, "{name}");
    }
}
