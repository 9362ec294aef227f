//! `miren schema`.

use serde_json::Value;

use super::{examples, miren};

#[test]
fn schema_prints_a_2020_12_json_schema_that_accepts_the_examples() {
    let out = miren()
        .arg("schema")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let schema: Value = serde_json::from_slice(&out).expect("JSON");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    // `name` is optional: without it the app is named after its directory.
    assert_eq!(schema["required"], Value::Null);
    assert!(schema["properties"]["name"].is_object());
    let validator = jsonschema::draft202012::new(&schema).expect("a valid schema");
    let text =
        std::fs::read_to_string(examples().join("fullstack/.miren/app.toml")).expect("example");
    let instance: Value = toml::from_str(&text).expect("toml");
    assert!(validator.is_valid(&instance));
    let typo: Value =
        toml::from_str("name = \"a\"\n[services.web]\ncomand = \"x\"\n").expect("toml");
    assert!(!validator.is_valid(&typo), "unknown keys are rejected");
}
