//! What a user reads: rendered diagnostics, kept as snapshots.

use miren_core::config::validate;

fn render(src: &str) -> String {
    validate(src).report(".miren/app.toml", src).render(false)
}

#[test]
fn a_mistyped_key_shows_the_fix() {
    insta::assert_snapshot!(render(
        "name = \"shop\"\n\n[services.web]\ncomand = \"npm start\"\n"
    ));
}

#[test]
fn a_disk_on_an_autoscaled_service_names_both_and_shows_the_fix() {
    insta::assert_snapshot!(render(
        "name = \"shop\"\n\n[services.postgres]\nimage = \"postgres:16\"\n\n[services.postgres.concurrency]\nmode = \"auto\"\n\n[[services.postgres.disks]]\nname = \"pgdata\"\nmount_path = \"/var/lib/postgresql/data\"\nsize_gb = 10\n"
    ));
}

#[test]
fn env_written_as_a_table_shows_the_list_form() {
    insta::assert_snapshot!(render("name = \"shop\"\n\n[env]\nLOG_LEVEL = \"info\"\n"));
}

#[test]
fn a_duration_without_a_unit_explains_units() {
    insta::assert_snapshot!(render(
        "name = \"shop\"\n\n[services.web.concurrency]\nscale_down_delay = 30\n"
    ));
}

#[test]
fn a_duplicate_env_key_points_at_both() {
    insta::assert_snapshot!(render(
        "name = \"shop\"\n\n[[env]]\nkey = \"A\"\nvalue = \"1\"\n\n[[env]]\nkey = \"A\"\nvalue = \"2\"\n"
    ));
}

#[test]
fn a_syntax_error_and_a_rule_error_render_together() {
    insta::assert_snapshot!(render("name = \"Shop\"\n[services.web]\nport = = 80\n"));
}

#[test]
fn colour_is_only_added_when_asked_for() {
    let src = "name = \"shop\"\n[services.web]\ncomand = \"x\"\n";
    let v = validate(src);
    assert!(!v.report("f", src).render(false).contains('\x1b'));
    assert!(v.report("f", src).render(true).contains('\x1b'));
}
