//! The rules of `[tasks.<name>]` (SPEC §14), with upstream Miren's own checks: a
//! schedule only on scheduled tasks and exactly one kind of it, `every` dividing a day,
//! no `retries` on manual tasks.

use std::time::Duration;

use super::app_config::{AppConfig, TaskConfig, Trigger};
use super::decode::join;
use super::diagnostic::Diagnostic;
use super::rules::Rules;
use super::suggest::closest;
use super::{calendar, defaults, duration, names};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl Rules<'_> {
    pub(super) fn tasks(&mut self, c: &AppConfig) {
        for (name, t) in &c.tasks {
            let path = join("tasks", name);
            self.task(c, name, t, &path);
        }
    }

    fn task(&mut self, c: &AppConfig, name: &str, t: &TaskConfig, path: &str) {
        if let Some(span) = self.spans.key(path)
            && let Err(p) = names::dns_label(name)
        {
            let mut d = Diagnostic::error(
                path,
                span.clone(),
                format!("task name `{name}` {}", p.reason),
            )
            .with_label("not a valid task name");
            d = match p.fixed {
                Some(f) => d
                    .with_help(format!("task names name their runs' sandboxes, so they are DNS labels: `{f}`"))
                    .with_suggestion(span, f),
                None => d.with_help("task names name their runs' sandboxes, so they are DNS labels: lowercase letters, digits and `-`"),
            };
            self.push(d);
        }
        let cmd_path = format!("{path}.command");
        if let Some(span) = self.spans.value(&cmd_path)
            && t.command.trim().is_empty()
        {
            self.push(
                Diagnostic::error(&cmd_path, span, "`command` is empty")
                    .with_label("nothing to run")
                    .with_help("write the command the task runs, e.g. command = \"python manage.py migrate\""),
            );
        }
        let trigger = t.trigger.unwrap_or(Trigger::Manual);
        let trigger_at = self.spans.value(&format!("{path}.trigger"));
        let every_path = format!("{path}.every");
        let sched_path = format!("{path}.schedule");
        let every_at = self.spans.value(&every_path);
        let sched_at = self.spans.value(&sched_path);
        let failed_trigger = self.spans.failed(&format!("{path}.trigger"));
        if trigger == Trigger::Schedule {
            match (&every_at, &sched_at) {
                (Some(_), Some(s)) => self.push(
                    Diagnostic::error(&sched_path, s.clone(), format!("task `{name}` has both `every` and `schedule`"))
                        .with_label("second schedule")
                        .with_related(every_at.clone().unwrap_or(0..0), "`every` set here")
                        .with_help("keep one: `every = \"15m\"` runs at fixed intervals, `schedule` at calendar times"),
                ),
                (None, None) if !self.spans.failed(&every_path) && !self.spans.failed(&sched_path) => {
                    let at = trigger_at.clone().unwrap_or(0..0);
                    self.push(
                        Diagnostic::error(format!("{path}.trigger"), at, format!("scheduled task `{name}` has no `every` or `schedule`"))
                            .with_label("when?")
                            .with_help("add `every = \"1h\"` (intervals from midnight UTC) or `schedule = \"daily\"` (a systemd calendar event, UTC)"),
                    );
                }
                _ => {}
            }
        } else if !failed_trigger {
            for (key, at) in [("every", &every_at), ("schedule", &sched_at)] {
                if let Some(at) = at {
                    let mut d = Diagnostic::error(
                        format!("{path}.{key}"),
                        at.clone(),
                        format!("`{key}` only applies to scheduled tasks, but `{name}` is triggered by {}", trigger.as_str()),
                    )
                    .with_label("never used")
                    .with_help("add `trigger = \"schedule\"` to run it on this schedule");
                    if let Some(t) = &trigger_at {
                        d = d.with_related(t.clone(), "trigger set here");
                    }
                    self.push(d);
                }
            }
        }
        if let (Some(e), Some(span)) = (&t.every, &every_at) {
            match duration::parse(e) {
                Ok(d)
                    if d < Duration::from_secs(1)
                        || !DAY.as_nanos().is_multiple_of(d.as_nanos()) =>
                {
                    self.push(
                        Diagnostic::error(&every_path, span.clone(), format!("`every` must divide a day evenly, found \"{e}\""))
                            .with_label("doesn't divide 24h")
                            .with_help("runs are at multiples of it since midnight UTC: use e.g. \"1m\", \"5m\", \"15m\", \"1h\", \"6h\" or \"24h\"; for other times use `schedule`"),
                    );
                }
                Ok(_) => {}
                Err(err) => self.push(
                    Diagnostic::error(
                        &every_path,
                        span.clone(),
                        format!("`every` is not a duration: {err}"),
                    )
                    .with_label("expected a duration like \"15m\"")
                    .with_help(err.help()),
                ),
            }
        }
        if let (Some(s), Some(span)) = (&t.schedule, &sched_at)
            && let Err(e) = calendar::parse(s)
        {
            self.push(
                Diagnostic::error(&sched_path, span.clone(), format!("`schedule` is not a calendar event: {e}"))
                    .with_label("not a systemd calendar event")
                    .with_help("for example \"daily\", \"hourly\", \"Mon *-*-* 03:00:00\" or \"*:0/15\" (every 15 minutes); times are UTC"),
            );
        }
        let timeout_path = format!("{path}.timeout");
        if t.timeout.as_deref() != Some("0") {
            self.duration(
                t.timeout.as_deref(),
                &timeout_path,
                Duration::ZERO,
                "\"10m\" (or \"0\" for none)",
            );
        }
        let retries_path = format!("{path}.retries");
        if let Some(span) = self.spans.key(&retries_path)
            && trigger == Trigger::Manual
            && !failed_trigger
        {
            self.push(
                Diagnostic::error(&retries_path, span, format!("`retries` is not allowed on manual task `{name}`"))
                    .with_label("manual tasks aren't retried")
                    .with_help("a manual run's failure is reported to whoever ran it; remove `retries`, or give the task a `trigger`"),
            );
        }
        self.env_list(&t.env, &format!("{path}.env"));
        let svc_path = format!("{path}.service");
        if let (Some(svc), Some(span)) = (&t.service, self.spans.value(&svc_path)) {
            let implied_web = c.services.is_empty() && c.web != Some(false) && svc == defaults::WEB;
            if !c.services.contains_key(svc) && !implied_web && !self.spans.failed("services") {
                let mut d = Diagnostic::error(
                    &svc_path,
                    span.clone(),
                    format!("task `{name}` runs with service `{svc}`, which the app doesn't have"),
                )
                .with_label("no such service");
                d = match closest(svc, c.services.keys().map(String::as_str)) {
                    Some(best) => d
                        .with_help(format!("did you mean `{best}`?"))
                        .with_suggestion(span.clone(), format!("\"{best}\"")),
                    None if c.services.is_empty() => {
                        d.with_help("remove `service` to run it with the app's built image")
                    }
                    None => d.with_help(format!(
                        "the services are: {}",
                        c.services
                            .keys()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                };
                self.push(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{Schedule, Trigger, validate};

    const TASKS: &str = r#"
name = "shop"
[[env]]
key = "MODE"
value = "app"
[services.web]
command = "gunicorn app:app"
[services.worker]
command = "rq worker"
[tasks.migrate]
command = "flask db upgrade"
trigger = "deploy"
retries = 2
[tasks.report]
command = "python report.py"
trigger = "schedule"
schedule = "Mon..Fri *-*-* 06:00:00"
timeout = "0"
max_concurrent = 2
service = "worker"
[[tasks.report.env]]
key = "MODE"
value = "report"
[tasks.tick]
command = "date"
trigger = "schedule"
every = "15m"
[tasks.seed]
command = "flask seed"
"#;

    #[test]
    fn every_task_key_validates_and_resolves_with_its_defaults() {
        let v = validate(TASKS);
        assert!(v.diagnostics.is_empty(), "{:#?}", v.diagnostics);
        let app = v.resolved.unwrap_or_else(|| panic!("no resolved config"));
        let t = |n: &str| app.tasks.get(n).unwrap_or_else(|| panic!("no {n}")).clone();
        assert_eq!(t("migrate").trigger, Trigger::Deploy);
        assert_eq!(t("migrate").retries, 2);
        assert_eq!(t("migrate").service.as_deref(), Some("web"));
        assert_eq!(t("migrate").timeout, Some(Duration::from_secs(600)));
        assert_eq!(t("report").timeout, None, "\"0\" is no timeout");
        assert_eq!(t("report").max_concurrent, 2);
        assert_eq!(
            t("report").env.get("MODE").map(String::as_str),
            Some("report")
        );
        assert_eq!(
            t("report").schedule,
            Some(Schedule::Calendar("Mon..Fri *-*-* 06:00:00".into()))
        );
        assert_eq!(
            t("tick").schedule,
            Some(Schedule::Every(Duration::from_secs(900)))
        );
        assert_eq!(t("seed").trigger, Trigger::Manual);
        assert_eq!(t("seed").max_concurrent, 1);
        assert!(app.web);
    }

    #[test]
    fn every_runs_at_multiples_of_itself_since_midnight() {
        let every = Schedule::Every(Duration::from_secs(900));
        // 2026-12-02 10:07:03.5 UTC → 10:15:00.
        let t = 1_796_206_023_500;
        assert_eq!(every.next_after(t), Some(1_796_206_500_000));
        assert_eq!(every.next_after(1_796_206_500_000), Some(1_796_207_400_000));
    }

    #[test]
    fn an_app_without_web_implies_none() {
        let v = validate("name = \"jobs\"\nweb = false\n[tasks.clean]\ncommand = \"c\"\n");
        assert!(v.diagnostics.is_empty(), "{:#?}", v.diagnostics);
        let app = v.resolved.unwrap_or_else(|| panic!("no resolved config"));
        assert!(app.services.is_empty() && !app.web);
        assert_eq!(app.tasks.get("clean").and_then(|t| t.service.clone()), None);
    }
}
