//! The syntax of names app.toml uses: app and service names, env keys, disk names,
//! image references. Each check says what is wrong and, where one exists, offers the
//! nearest valid spelling.

use std::sync::LazyLock;

use regex::Regex;

/// A rejected name: why, and a valid spelling close to it when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameProblem {
    /// What is wrong, as the end of a sentence ("must start with a letter").
    pub reason: String,
    /// A valid name the user probably meant.
    pub fixed: Option<String>,
}

fn regex(pattern: &str) -> Regex {
    // The patterns are constants of this file, covered by the tests below.
    Regex::new(pattern).unwrap_or_else(|e| panic!("invalid built-in pattern {pattern}: {e}"))
}

static DNS_LABEL: LazyLock<Regex> = LazyLock::new(|| regex(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"));
static ENV_KEY: LazyLock<Regex> = LazyLock::new(|| regex(r"^[A-Za-z_][A-Za-z0-9_]*$"));
static DISK_NAME: LazyLock<Regex> = LazyLock::new(|| regex(r"^[a-z0-9][a-z0-9_-]{0,62}$"));

/// The image reference grammar of the Docker distribution project
/// (`[host[:port]/]path[:tag][@algo:hex]`).
static IMAGE_REF: LazyLock<Regex> = LazyLock::new(|| {
    let domain_component = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let domain =
        format!(r"(?:{domain_component}(?:\.{domain_component})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?");
    let path_component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    let tag = r"[\w][\w.-]{0,127}";
    let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
    regex(&format!(
        r"^(?:{domain}/)?{path_component}(?:/{path_component})*(?::{tag})?(?:@{digest})?$"
    ))
});

/// Checks an app or service name: a DNS label, because it becomes one
/// (`<service>.app.miren`).
pub fn dns_label(name: &str) -> Result<(), NameProblem> {
    if DNS_LABEL.is_match(name) {
        return Ok(());
    }
    let reason = if name.is_empty() {
        "must not be empty".to_string()
    } else if name.len() > 63 {
        format!("must be at most 63 characters (it has {})", name.len())
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.starts_with(|c: char| c.is_ascii_uppercase())
    {
        "must start with a letter".to_string()
    } else if name.ends_with('-') {
        "must not end with `-`".to_string()
    } else if name.chars().any(|c| c.is_ascii_uppercase()) {
        "must be lowercase".to_string()
    } else {
        "may only contain lowercase letters, digits and `-`".to_string()
    };
    Err(NameProblem {
        reason,
        fixed: fix_label(name),
    })
}

/// `name` itself when it is a DNS label, else the closest one (an app named after its
/// directory: `My_App` → `my-app`); `None` when nothing of it makes one.
pub fn label_from(name: &str) -> Option<String> {
    match dns_label(name) {
        Ok(()) => Some(name.to_string()),
        Err(p) => p.fixed,
    }
}

/// The closest DNS label to `name`: lowercased, `_`, `.` and spaces as `-`, other
/// characters dropped, trimmed to 63.
fn fix_label(name: &str) -> Option<String> {
    let mut s: String = name
        .chars()
        .filter_map(|c| match c {
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            'a'..='z' | '0'..='9' | '-' => Some(c),
            '_' | '.' | ' ' => Some('-'),
            _ => None,
        })
        .collect();
    s = s
        .trim_start_matches(|c: char| !c.is_ascii_lowercase())
        .to_string();
    s.truncate(63);
    let s = s.trim_end_matches('-').to_string();
    DNS_LABEL.is_match(&s).then_some(s)
}

/// Checks an environment variable name.
pub fn env_key(key: &str) -> Result<(), NameProblem> {
    if ENV_KEY.is_match(key) {
        return Ok(());
    }
    let reason = if key.is_empty() {
        "must not be empty".to_string()
    } else if key.starts_with(|c: char| c.is_ascii_digit()) {
        "must not start with a digit".to_string()
    } else {
        "may only contain letters, digits and `_`".to_string()
    };
    let fixed: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    Err(NameProblem {
        reason,
        fixed: ENV_KEY.is_match(&fixed).then_some(fixed),
    })
}

/// The variable holding an instance's port of a named port (`PORT_<NAME>`:
/// `irc-tls` → `PORT_IRC_TLS`), as `$MIREN_DISK_<NAME>` names a disk.
pub fn port_var(port_name: &str) -> String {
    format!("PORT_{}", port_name.to_ascii_uppercase().replace('-', "_"))
}

/// Checks a disk name.
pub fn disk_name(name: &str) -> Result<(), NameProblem> {
    if DISK_NAME.is_match(name) {
        return Ok(());
    }
    let reason = if name.is_empty() {
        "must not be empty".to_string()
    } else if name.len() > 63 {
        format!("must be at most 63 characters (it has {})", name.len())
    } else if name.chars().any(|c| c.is_ascii_uppercase()) {
        "must be lowercase".to_string()
    } else if name.starts_with(['-', '_']) {
        "must start with a letter or digit".to_string()
    } else {
        "may only contain lowercase letters, digits, `-` and `_`".to_string()
    };
    let fixed: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let fixed = fixed.trim_start_matches(['-', '_']).to_string();
    Err(NameProblem {
        reason,
        fixed: DISK_NAME.is_match(&fixed).then_some(fixed),
    })
}

/// Checks an image reference (`postgres:16`, `ghcr.io/org/app:1.2@sha256:…`).
pub fn image_ref(image: &str) -> Result<(), NameProblem> {
    let name_part = image.split(['@']).next().unwrap_or(image);
    if IMAGE_REF.is_match(image) && name_part.len() <= 255 {
        return Ok(());
    }
    let problem = |reason: &str, fixed: Option<String>| NameProblem {
        reason: reason.to_string(),
        fixed: fixed.filter(|f| IMAGE_REF.is_match(f)),
    };
    if image.trim().is_empty() {
        return Err(problem("must not be empty", None));
    }
    if image.trim() != image || image.contains(char::is_whitespace) {
        return Err(problem(
            "must not contain spaces",
            Some(image.trim().to_string()),
        ));
    }
    if let Some((_, rest)) = image.split_once("://") {
        return Err(problem(
            "is a URL; an image reference has no scheme",
            Some(rest.to_string()),
        ));
    }
    if let Some((_, digest)) = image.split_once('@')
        && let Some(hex) = digest.strip_prefix("sha256:")
        && (hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(problem(
            "has a bad digest: `sha256:` takes 64 hex digits",
            None,
        ));
    }
    if name_part.len() > 255 {
        return Err(problem("is longer than 255 characters", None));
    }
    // Uppercase is allowed in the registry host but not in the repository path.
    let (host, path) = match name_part.split_once('/') {
        Some((h, p)) if h.contains(['.', ':']) || h == "localhost" => (Some(h), p),
        _ => (None, name_part),
    };
    let repo = path.split(':').next().unwrap_or(path);
    if repo.chars().any(|c| c.is_ascii_uppercase()) {
        let fixed = match host {
            Some(h) => format!("{h}/{}{}", repo.to_ascii_lowercase(), &path[repo.len()..]),
            None => format!("{}{}", repo.to_ascii_lowercase(), &path[repo.len()..]),
        };
        let fixed = match image.split_once('@') {
            Some((_, d)) => format!("{fixed}@{d}"),
            None => fixed,
        };
        return Err(problem(
            "must have a lowercase repository name",
            Some(fixed),
        ));
    }
    Err(problem(
        "is not a valid image reference: expected `name[:tag][@sha256:…]`, like `postgres:16`",
        None,
    ))
}

/// The host of the default route: every host without a route of its own.
pub const DEFAULT_HOST: &str = "*";

/// Checks a route's host as stored: [`DEFAULT_HOST`], or a lowercase host name made
/// of DNS labels, without a port or a trailing dot.
pub fn route_host(host: &str) -> Result<(), NameProblem> {
    if host == DEFAULT_HOST {
        return Ok(());
    }
    if host.is_empty() || host.len() > 253 {
        return Err(NameProblem {
            reason: format!("must be 1 to 253 characters (it has {})", host.len()),
            fixed: None,
        });
    }
    for label in host.split('.') {
        dns_label(label).map_err(|p| NameProblem {
            reason: format!("`{label}` {}", p.reason),
            fixed: None,
        })?;
    }
    Ok(())
}

/// A route's host as someone typed it, made into the stored form (lowercase, no
/// trailing dot). A URL, a path or a port is refused — routes match a host on every
/// port — with the host it would be as the fix.
pub fn route_host_from(given: &str) -> Result<String, NameProblem> {
    let g = given.trim().to_ascii_lowercase();
    let (rest, what) = match g.split_once("://") {
        Some((_, rest)) => (rest, Some("is a URL")),
        None => (g.as_str(), None),
    };
    let (before_path, path) = match rest.split_once('/') {
        Some((h, _)) => (h, true),
        None => (rest, false),
    };
    let (host, port) = match before_path.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, true),
        _ => (before_path, false),
    };
    let host = host.trim_end_matches('.').to_string();
    let what = what
        .or(path.then_some("has a path"))
        .or(port.then_some("has a port"));
    if let Some(what) = what {
        return Err(NameProblem {
            reason: format!(
                "{what}: a route's host is a host name alone (it matches every port and path){}",
                if route_host(&host).is_ok() && !host.is_empty() {
                    format!("; did you mean `{host}`?")
                } else {
                    String::new()
                }
            ),
            fixed: Some(host).filter(|h| route_host(h).is_ok() && !h.is_empty()),
        });
    }
    route_host(&host)?;
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_hosts_are_host_names_alone() {
        assert_eq!(
            route_host_from("Shop.Example.COM."),
            Ok("shop.example.com".into())
        );
        assert_eq!(route_host_from("*"), Ok("*".into()));
        for (given, why) in [
            ("http://myapp.example.com/", "is a URL"),
            ("myapp.example.com/admin", "has a path"),
            ("myapp.example.com:8080", "has a port"),
        ] {
            let p = route_host_from(given)
                .err()
                .unwrap_or_else(|| panic!("{given}"));
            assert!(p.reason.starts_with(why), "{given}: {}", p.reason);
            assert!(
                p.reason.ends_with("did you mean `myapp.example.com`?"),
                "{}",
                p.reason
            );
            assert_eq!(p.fixed.as_deref(), Some("myapp.example.com"));
        }
        assert!(route_host_from("my_app.example.com").is_err());
    }

    #[test]
    fn dns_labels_follow_rfc_1123_with_a_leading_letter() {
        for ok in ["web", "a", "my-app", "x1", &"a".repeat(63)] {
            assert_eq!(dns_label(ok), Ok(()), "{ok}");
        }
        for bad in ["", "1web", "Web", "my_app", "web-", &"a".repeat(64), "we.b"] {
            assert!(dns_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_label_comes_with_a_fixed_spelling() {
        assert_eq!(
            dns_label("My_App").err().and_then(|p| p.fixed),
            Some("my-app".into())
        );
        assert_eq!(
            dns_label("Web").err().map(|p| p.reason),
            Some("must be lowercase".into())
        );
    }

    #[test]
    fn env_keys_are_shell_identifiers() {
        assert!(env_key("DATABASE_URL").is_ok());
        assert!(env_key("_x1").is_ok());
        assert_eq!(
            env_key("MY-VAR").err().and_then(|p| p.fixed),
            Some("MY_VAR".into())
        );
        assert!(env_key("1X").is_err());
        assert!(env_key("").is_err());
    }

    #[test]
    fn disk_names_allow_underscores_and_a_leading_digit() {
        assert!(disk_name("pg-data").is_ok());
        assert!(disk_name("0_data").is_ok());
        assert_eq!(
            disk_name("PG Data").err().and_then(|p| p.fixed),
            Some("pg-data".into())
        );
        assert!(disk_name("-x").is_err());
    }

    #[test]
    fn image_references_follow_the_distribution_grammar() {
        for ok in [
            "postgres:16",
            "redis:7-alpine",
            "postgres:16-alpine",
            "ghcr.io/org/app:1.2.3",
            "localhost:5000/app",
            "library/busybox",
            "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "my.registry:443/a/b_c__d-e:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(image_ref(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Postgres:16",
            "postgres:",
            ":16",
            "post gres",
            "https://x/y",
            "a@sha256:12",
            "a//b",
            "-a",
        ] {
            assert!(image_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_image_reference_says_why() {
        let p = image_ref("Postgres:16").err();
        assert_eq!(
            p.as_ref().map(|p| p.reason.as_str()),
            Some("must have a lowercase repository name")
        );
        assert_eq!(p.and_then(|p| p.fixed), Some("postgres:16".into()));
        assert_eq!(
            image_ref("docker://redis:7").err().and_then(|p| p.fixed),
            Some("redis:7".into())
        );
    }
}
