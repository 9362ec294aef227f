//! `miren init`.

use predicates::prelude::*;

use super::miren;

#[test]
fn init_writes_a_starter_that_validates_named_after_the_directory() {
    let parent = tempfile::tempdir().expect("tmp");
    let dir = parent.path().join("My_Shop");
    std::fs::create_dir(&dir).expect("mkdir");
    miren()
        .current_dir(&dir)
        .arg("init")
        .assert()
        .code(0)
        .stderr(predicate::str::contains("app `my-shop`"));
    let text = std::fs::read_to_string(dir.join(".miren/app.toml")).expect("written");
    assert!(text.contains("name = \"my-shop\""), "{text}");
    miren().current_dir(&dir).arg("validate").assert().code(0);
}

#[test]
fn init_takes_a_name_and_guesses_the_command_from_the_stack() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("package.json"),
        r#"{"scripts": {"start": "node server.js"}}"#,
    )
    .expect("write");
    miren()
        .current_dir(dir.path())
        .args(["init", "-n", "shop"])
        .assert()
        .code(0);
    let text = std::fs::read_to_string(dir.path().join(".miren/app.toml")).expect("written");
    assert!(text.contains("name = \"shop\""));
    assert!(text.contains("command = \"npm start\""));
    miren()
        .current_dir(dir.path())
        .arg("validate")
        .assert()
        .code(0);
}

#[test]
fn init_never_overwrites_an_existing_file() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join(".miren")).expect("mkdir");
    std::fs::write(dir.path().join(".miren/app.toml"), "name = \"mine\"\n").expect("write");
    miren()
        .current_dir(dir.path())
        .args(["init", "-n", "other"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".miren/app.toml")).expect("read"),
        "name = \"mine\"\n"
    );
}

#[test]
fn init_rejects_an_invalid_name_with_a_suggestion() {
    let dir = tempfile::tempdir().expect("tmp");
    miren()
        .current_dir(dir.path())
        .args(["init", "-n", "My_App"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("must be lowercase"))
        .stderr(predicate::str::contains("miren init -n my-app"));
    assert!(!dir.path().join(".miren").exists(), "nothing written");
}

/// `miren init` in a directory holding `files`; the app.toml it wrote.
fn init_with(files: &[(&str, &str)]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tmp");
    for (f, text) in files {
        std::fs::write(dir.path().join(f), text).expect("write");
    }
    miren()
        .current_dir(dir.path())
        .args(["init", "-n", "guess"])
        .assert()
        .code(0);
    miren()
        .current_dir(dir.path())
        .arg("validate")
        .assert()
        .code(0)
        .stderr(predicate::str::contains("warning").not());
    let text = std::fs::read_to_string(dir.path().join(".miren/app.toml")).expect("written");
    (dir, text)
}

#[test]
fn init_reads_the_django_project_from_manage_py_and_binds_port() {
    let (_d, text) = init_with(&[
        (
            "manage.py",
            "import os\nos.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"mysite.settings\")\n",
        ),
        ("requirements.txt", "Django==5.1\ngunicorn\ncelery[redis]\n"),
    ]);
    assert!(
        text.contains("command = \"gunicorn mysite.wsgi --bind 0.0.0.0:$PORT\""),
        "{text}"
    );
    assert!(text.contains("celery -A mysite worker"), "{text}");
}

#[test]
fn init_knows_flask_and_go() {
    let (_d, text) = init_with(&[
        ("requirements.txt", "Flask==3.1\ngunicorn==23\n"),
        ("app.py", "from flask import Flask\napp = Flask(__name__)\n"),
    ]);
    assert!(
        text.contains("command = \"gunicorn app:app --bind 0.0.0.0:$PORT\""),
        "{text}"
    );
    let (_d, text) = init_with(&[("requirements.txt", "flask\n"), ("main.py", "")]);
    assert!(
        text.contains("command = \"flask --app main run --host 0.0.0.0 --port $PORT\""),
        "{text}"
    );
    let (_d, text) = init_with(&[("go.mod", "module example.com/shop\n")]);
    assert!(text.contains("command = \"go run .\""), "{text}");
}

#[test]
fn with_nothing_recognised_the_command_fails_saying_what_to_edit_and_serves_no_files() {
    let (dir, text) = init_with(&[("secret.env", "TOKEN=hunter2\n")]);
    assert!(
        !text.contains("http.server"),
        "never a file server of the source: {text}"
    );
    // Run as written, it fails at once and says what to do.
    let out = std::process::Command::new("sh")
        .current_dir(dir.path())
        .arg("-c")
        .arg(
            text.lines()
                .find_map(|l| l.strip_prefix("command = \""))
                .and_then(|c| c.strip_suffix('"'))
                .expect("a command"),
        )
        .output()
        .expect("sh");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("edit the command of services.web in .miren/app.toml"),
        "{out:?}"
    );
}
