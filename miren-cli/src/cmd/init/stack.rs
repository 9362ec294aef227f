//! What a directory's files say about how its app starts: the commands `init` writes.
//! Every guess listens on `$PORT`; with nothing to go on, the command is a placeholder
//! that fails saying what to edit — never a server of the source directory, which would
//! publish the code.

use std::path::Path;

/// The commands for an app's services, and what the user should check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guess {
    /// What the files looked like (`Django (mysite)`), for the message.
    pub stack: String,
    /// The web service's command.
    pub web: String,
    /// A worker's, when the stack has a usual one.
    pub worker: Option<String>,
}

/// The placeholder when nothing is recognised.
pub const PLACEHOLDER: &str = "echo 'edit the command of services.web in .miren/app.toml: it starts your web server, listening on $PORT' >&2; exit 1";

/// Guesses from the files in `dir`.
pub fn guess(dir: &Path) -> Guess {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let has = |f: &str| dir.join(f).is_file();
    let python_deps =
        format!("{}\n{}", read("requirements.txt"), read("pyproject.toml")).to_ascii_lowercase();
    let g = |stack: &str, web: String, worker: Option<String>| Guess {
        stack: stack.to_string(),
        web,
        worker,
    };
    if has("package.json") {
        let pkg: serde_json::Value =
            serde_json::from_str(&read("package.json")).unwrap_or_default();
        let script = |s: &str| pkg["scripts"][s].is_string();
        let web = if script("start") {
            "npm start".to_string()
        } else if let Some(main) = pkg["main"].as_str() {
            format!("node {main}")
        } else {
            "node server.js".to_string()
        };
        return g(
            "Node.js",
            web,
            script("worker").then(|| "npm run worker".to_string()),
        );
    }
    if has("manage.py") {
        let project = django_project(&read("manage.py")).unwrap_or_else(|| "app".to_string());
        let worker = python_deps
            .contains("celery")
            .then(|| format!("celery -A {project} worker --loglevel=info"));
        return g(
            &format!("Django ({project})"),
            format!("gunicorn {project}.wsgi --bind 0.0.0.0:$PORT"),
            worker,
        );
    }
    if python_deps.contains("flask") {
        let module = ["app.py", "wsgi.py", "main.py"]
            .iter()
            .find(|f| has(f))
            .map_or("app", |f| f.trim_end_matches(".py"));
        let web = if python_deps.contains("gunicorn") {
            format!("gunicorn {module}:app --bind 0.0.0.0:$PORT")
        } else {
            format!("flask --app {module} run --host 0.0.0.0 --port $PORT")
        };
        let worker = python_deps
            .contains("rq")
            .then(|| "rq worker --url $REDIS_URL".to_string());
        return g("Flask", web, worker);
    }
    if has("Gemfile") {
        let gems = read("Gemfile");
        let web = if gems.contains("rails") {
            "bundle exec rails server -b 0.0.0.0 -p $PORT"
        } else {
            "bundle exec puma -p $PORT"
        };
        let worker = gems
            .contains("sidekiq")
            .then(|| "bundle exec sidekiq".to_string());
        return g("Ruby", web.to_string(), worker);
    }
    if has("go.mod") {
        // Go servers read the port themselves: `os.Getenv("PORT")`.
        return g("Go", "go run .".to_string(), None);
    }
    g("nothing recognised", PLACEHOLDER.to_string(), None)
}

/// The project package of a Django `manage.py`: `mysite` of
/// `os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")`.
fn django_project(manage_py: &str) -> Option<String> {
    let at = manage_py.find("DJANGO_SETTINGS_MODULE")?;
    let rest = &manage_py[at + "DJANGO_SETTINGS_MODULE".len()..];
    let quote = rest.find(['"', '\''])?;
    let rest = &rest[quote + 1..];
    let rest = &rest[rest.find(['"', '\''])? + 1..];
    let value = &rest[..rest.find(['"', '\''])?];
    let project = value
        .strip_suffix(".settings")
        .unwrap_or(value.split('.').next()?);
    (!project.is_empty()).then(|| project.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_settings_name_the_project() {
        let m =
            "import os\nos.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"mysite.settings\")\n";
        assert_eq!(django_project(m).as_deref(), Some("mysite"));
        let m = "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings.prod')";
        assert_eq!(django_project(m).as_deref(), Some("config"));
        assert_eq!(django_project("print('hi')"), None);
    }
}
