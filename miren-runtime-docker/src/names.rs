//! What the platform's objects are called in the Engine, and the labels that say
//! they are the platform's.

use miren_core::model::VersionId;

/// Label on every network and volume the runtime makes: which app it is for.
pub use miren_core::runtime::LABEL_APP;
/// Label on a volume: the disk's size as app.toml asks for it (recorded; the Engine's
/// local volumes have no size).
pub const LABEL_SIZE_GB: &str = "dev.miren.size_gb";
/// Label on a volume: the disk's name in app.toml.
pub const LABEL_DISK: &str = "dev.miren.disk";
/// Label on every container: which server runs it. A server lists, adopts and
/// removes only its own: two servers on one Engine (a `miren server` and a `miren
/// up`, two `miren up`s) never stop each other's containers.
pub const LABEL_OWNER: &str = "dev.miren.owner";
/// The search domain containers resolve short names in.
pub const SEARCH_DOMAIN: &str = "app.miren";

/// An app's bridge network.
pub fn network(app: &str) -> String {
    format!("miren-{app}")
}

/// An app's disk.
pub fn volume(app: &str, disk: &str) -> String {
    format!("miren-{app}-{disk}")
}

/// The repository of an app's built images.
pub fn repository(app: &str) -> String {
    format!("miren/{app}")
}

/// The image built from a version's code.
pub fn built_image(app: &str, version: &VersionId) -> String {
    format!("{}:{version}", repository(app))
}

/// `name[:tag]` → (name, tag), the tag `latest` when there is none; a digest stays
/// with the name.
pub fn split_reference(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    // A colon after the last slash is a tag; one before it is a registry's port.
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag_not_at_a_registry_port() {
        assert_eq!(split_reference("postgres:16"), ("postgres", "16"));
        assert_eq!(split_reference("redis"), ("redis", "latest"));
        assert_eq!(
            split_reference("registry.example:5000/team/app:v2"),
            ("registry.example:5000/team/app", "v2")
        );
        assert_eq!(
            split_reference("registry.example:5000/app"),
            ("registry.example:5000/app", "latest")
        );
        assert_eq!(split_reference("app@sha256:00ff").1, "");
    }

    #[test]
    fn names_follow_the_app() {
        let v = VersionId::new("shop");
        assert_eq!(network("shop"), "miren-shop");
        assert_eq!(volume("shop", "pg-data"), "miren-shop-pg-data");
        assert_eq!(built_image("shop", &v), format!("miren/shop:{v}"));
    }
}
