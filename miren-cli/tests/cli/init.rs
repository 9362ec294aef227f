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
    std::fs::write(dir.path().join("package.json"), "{}").expect("write");
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
