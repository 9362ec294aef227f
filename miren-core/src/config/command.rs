//! What a service's command line says about the port it listens on.
//!
//! Commands copied from Docker-first docs bind the port they chose themselves
//! (`gunicorn app:app --bind 0.0.0.0:8000`). In a container that is fine; on the process
//! runtime every instance shares the machine, so each gets its own `$PORT`. Validation
//! warns about such commands and the process runtime puts `$PORT` in place of the
//! service's own port, so the file runs as written; both find the port here, the same
//! way.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// Commands that visibly bind a fixed port: `--bind 0.0.0.0:8000`, `-p 8000`,
/// `--port=8000`, `localhost:8000`.
static FIXED_PORT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:(?:^|\s)(?:--bind|-b|--listen|-l|--port|-p|--http-port)(?:=|\s+)(?:[\w.\-\[\]:]*:)?|(?:0\.0\.0\.0|127\.0\.0\.1|localhost|\[::\]):)(\d{2,5})(?:$|[\s;&|])",
    )
    .unwrap_or_else(|e| panic!("built-in pattern: {e}"))
});

/// A port a command binds by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedPort {
    /// The port, as a number.
    pub port: u16,
    /// Where its digits are in the command.
    pub at: Range<usize>,
}

/// The first port `command` binds by itself; `None` when it binds none visibly, or
/// when it mentions `PORT` (it listens where the platform says, however it spells it).
pub fn fixed_port(command: &str) -> Option<FixedPort> {
    if command.contains("PORT") {
        return None;
    }
    let m = FIXED_PORT.captures(command)?.get(1)?;
    Some(FixedPort {
        port: m.as_str().parse().ok()?,
        at: m.range(),
    })
}

/// `command` with `$PORT` in place of the port it binds, when that is `declared` (the
/// service's own port); `None` when it binds no port, or another one (the platform
/// can't tell what that one is for).
pub fn listen_on_port_var(command: &str, declared: u16) -> Option<String> {
    listen_on_port_vars(command, &[(declared, "PORT".to_string())])
}

/// `command` with `$<VAR>` in place of each declared port it binds by itself
/// (`declared`: port → the variable holding the instance's own, `PORT` or
/// `PORT_<NAME>`); `None` when it binds none of them.
pub fn listen_on_port_vars(command: &str, declared: &[(u16, String)]) -> Option<String> {
    if command.contains("PORT") {
        return None;
    }
    let mut out = String::with_capacity(command.len() + 8);
    let mut done = 0;
    for c in FIXED_PORT.captures_iter(command) {
        let Some(m) = c.get(1) else { continue };
        let Some((_, var)) = declared.iter().find(|(p, _)| m.as_str().parse() == Ok(*p)) else {
            continue;
        };
        out.push_str(&command[done..m.start()]);
        out.push('$');
        out.push_str(var);
        done = m.end();
    }
    if done == 0 {
        return None;
    }
    out.push_str(&command[done..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(c: &str) -> Option<u16> {
        fixed_port(c).map(|f| f.port)
    }

    #[test]
    fn the_usual_flags_are_found() {
        assert_eq!(port("gunicorn app:app --bind 0.0.0.0:8000"), Some(8000));
        assert_eq!(port("rails s -p 3000"), Some(3000));
        assert_eq!(port("serve --port=8080"), Some(8080));
        assert_eq!(
            port("uvicorn main:app --host 0.0.0.0 --port 8000"),
            Some(8000)
        );
        assert_eq!(port("python -m http.server --bind 127.0.0.1 9000"), None);
        assert_eq!(port("npm start"), None);
        assert_eq!(port("celery -A myapp worker --loglevel=info"), None);
        assert_eq!(port("gunicorn app:app --bind 0.0.0.0:$PORT"), None);
        assert_eq!(port("./serve -p ${PORT:-8000}"), None);
    }

    #[test]
    fn only_the_declared_port_becomes_port_var() {
        assert_eq!(
            listen_on_port_var("gunicorn app:app --bind 0.0.0.0:8000 -w 2", 8000).as_deref(),
            Some("gunicorn app:app --bind 0.0.0.0:$PORT -w 2")
        );
        assert_eq!(
            listen_on_port_var("rails s -p 3000", 3000).as_deref(),
            Some("rails s -p $PORT")
        );
        assert_eq!(listen_on_port_var("rails s -p 3000", 8000), None);
        assert_eq!(listen_on_port_var("npm start", 3000), None);
    }

    #[test]
    fn each_declared_port_becomes_its_own_var() {
        let declared = [(3000, "PORT".to_string()), (7000, "PORT_DATA".to_string())];
        assert_eq!(
            listen_on_port_vars("./server --port 3000 --listen 0.0.0.0:7000 -v", &declared)
                .as_deref(),
            Some("./server --port $PORT --listen 0.0.0.0:$PORT_DATA -v")
        );
        assert_eq!(
            listen_on_port_vars("./server --listen :9000", &declared),
            None
        );
    }
}
