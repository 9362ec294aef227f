//! `miren validate`.

use predicates::prelude::*;
use serde_json::Value;

use super::{app_dir, examples, miren};

const TYPO: &str = "name = \"shop\"\n\n[services.web]\ncomand = \"npm start\"\n";

#[test]
fn every_example_directory_is_valid() {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(examples()).expect("examples/").flatten() {
        if entry.path().join(".miren/app.toml").is_file() {
            miren()
                .arg("validate")
                .arg(entry.path())
                .assert()
                .code(0)
                .stderr(predicate::str::contains("is valid"));
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found.sort();
    // The user's seven examples and ours: a test that found none would pass empty.
    for name in [
        "counter",
        "demo",
        "django-celery",
        "env-vars",
        "fullstack",
        "go-postgres",
        "node-api",
        "postgres-image",
        "python-redis-queue",
        "rails-sidekiq",
        "service-communication",
        "visits",
        "web-worker",
    ] {
        assert!(found.iter().any(|f| f == name), "{name} not in {found:?}");
    }
}

#[test]
fn a_mistyped_key_prints_a_rustc_style_error_and_exits_1() {
    let dir = app_dir(TYPO);
    miren()
        .current_dir(dir.path())
        .arg("validate")
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "error: unknown key `comand` in `services.web`",
        ))
        .stderr(predicate::str::contains(" --> .miren/app.toml:4:1"))
        .stderr(predicate::str::contains("4 | comand = \"npm start\""))
        .stderr(predicate::str::contains("help: did you mean `command`?"))
        .stderr(predicate::str::contains("\x1b").not());
}

#[test]
fn colour_is_used_only_when_asked_or_on_a_terminal() {
    let dir = app_dir(TYPO);
    miren()
        .current_dir(dir.path())
        .args(["--color", "always", "validate"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("\x1b["));
    miren()
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .arg("validate")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("\x1b").not());
}

#[test]
fn validate_finds_the_app_from_a_subdirectory() {
    let dir = app_dir("name = \"shop\"\n[services.web]\ncommand = \"x\"\n");
    let sub = dir.path().join("src/deep");
    std::fs::create_dir_all(&sub).expect("mkdir");
    miren()
        .current_dir(&sub)
        .arg("validate")
        .assert()
        .code(0)
        .stderr(predicate::str::contains("app `shop` with 1 service (web)"));
}

#[test]
fn a_path_may_be_the_file_itself() {
    let dir = app_dir("name = \"shop\"\n");
    miren()
        .arg("validate")
        .arg(dir.path().join(".miren/app.toml"))
        .assert()
        .code(0);
}

#[test]
fn json_output_has_exactly_the_documented_shape() {
    let dir = app_dir(TYPO);
    let out = miren()
        .current_dir(dir.path())
        .args(["validate", "--format", "json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).expect("JSON on stdout");
    assert_eq!(v["valid"], false);
    assert!(v.get("resolved").is_none());
    let d = &v["diagnostics"][0];
    let mut keys: Vec<&str> = d
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["column", "help", "line", "message", "path", "severity"]
    );
    assert_eq!(d["severity"], "error");
    assert_eq!(d["path"], "services.web.comand");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(d["help"], "did you mean `command`?");
}

#[test]
fn resolved_config_is_printed_as_json_with_defaults_filled() {
    let dir = app_dir(
        "name = \"shop\"\n[[env]]\nkey = \"A\"\nvalue = \"1\"\n[services.web]\ncommand = \"x\"\n[services.worker]\ncommand = \"y\"\n",
    );
    let out = miren()
        .current_dir(dir.path())
        .args(["validate", "--resolved"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let r: Value = serde_json::from_slice(&out).expect("resolved JSON on stdout");
    assert_eq!(r["name"], "shop");
    assert_eq!(r["services"]["web"]["port"], 3000);
    assert_eq!(r["services"]["web"]["concurrency"]["mode"], "auto");
    assert_eq!(
        r["services"]["web"]["concurrency"]["scale_down_delay"],
        "15m"
    );
    assert_eq!(
        r["services"]["worker"]["concurrency"],
        serde_json::json!({"mode": "fixed", "num_instances": 1})
    );
    assert_eq!(r["services"]["worker"]["env"]["A"], "1");

    let out = miren()
        .current_dir(dir.path())
        .args(["validate", "--resolved", "--format", "json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).expect("JSON");
    assert_eq!(v["valid"], true);
    assert_eq!(v["resolved"]["services"]["web"]["port"], 3000);
}

#[test]
fn warnings_print_but_exit_0() {
    let dir = app_dir(
        "name = \"shop\"\n[services.web]\ncommand = \"gunicorn a:b --bind 0.0.0.0:8000\"\n",
    );
    miren()
        .current_dir(dir.path())
        .arg("validate")
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "warning: `web` binds the fixed port 8000",
        ));
}

#[test]
fn a_missing_file_exits_2_with_a_hint() {
    let dir = tempfile::tempdir().expect("tmp");
    miren()
        .current_dir(dir.path())
        .arg("validate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no .miren/app.toml in"))
        .stderr(predicate::str::contains("miren init"));
    miren()
        .arg("validate")
        .arg(dir.path().join("nope"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no app config at"));
}

#[test]
fn bad_flags_and_unknown_commands_exit_2() {
    miren()
        .args(["validate", "--bogus"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--bogus"));
    miren()
        .args(["--format", "yaml", "validate"])
        .assert()
        .code(2);
    miren().arg("frobnicate").assert().code(2);
}
