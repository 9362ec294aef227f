//! `miren schema` is derived from the config types; it must accept every example and
//! reject what validation rejects for shape reasons.

use miren_core::config::json_schema;

fn validator() -> jsonschema::Validator {
    let schema = json_schema();
    jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|e| panic!("the schema itself is invalid: {e}"))
}

fn as_json(toml_text: &str) -> serde_json::Value {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_schema_is_draft_2020_12() {
    let schema = json_schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

#[test]
fn every_example_validates_against_the_schema() {
    let v = validator();
    for (name, text) in super::examples::example_files() {
        let errors: Vec<String> = v
            .iter_errors(&as_json(&text))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "examples/{name}: {errors:#?}");
    }
}

#[test]
fn the_schema_rejects_unknown_keys_bad_names_and_bad_types() {
    // Without `name` a file is valid (the app is named after its directory).
    assert!(validator().is_valid(&as_json("[services.web]\n")));
    let v = validator();
    for bad in [
        "name = \"a\"\n[services.web]\ncomand = \"x\"\n",
        "name = \"A_b\"\n",
        "name = \"a\"\n[services.Web]\n",
        "name = \"a\"\n[services.web]\nport = 70000\n",
        "name = \"a\"\n[services.web.concurrency]\nmode = \"manual\"\n",
        "name = \"a\"\n[services.web.concurrency]\nscale_down_delay = \"1M\"\n",
        "name = \"a\"\n[[services.db.disks]]\nname = \"d\"\nmount_path = \"/d\"\n",
        "name = \"a\"\n[[env]]\nkey = \"1X\"\nvalue = \"v\"\n",
        "name = \"\"\n[services.web]\n",
    ] {
        assert!(!v.is_valid(&as_json(bad)), "the schema accepted:\n{bad}");
    }
}
