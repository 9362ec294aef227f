//! `/metrics` in Prometheus' text format, read back by a real parser
//! (`prometheus-parse`): the proxy counts every request exactly, by status class,
//! with a consistent histogram; on `--metrics-addr` without a token, and on the API.

use prometheus_parse::{Scrape, Value};

use super::{TestServer, get_path};
use crate::app_dir;

const APP: &str = r#"name = "metered"
[services.web]
command = "python3 web.py"
[services.web.concurrency]
mode = "fixed"
num_instances = 2

[services.burner]
command = "python3 burn.py"
"#;

/// Holds 64 MiB and spins for a second of CPU, then rests.
const BURN: &str = r#"
import time
held = bytearray(64 * 1024 * 1024)
for i in range(0, len(held), 4096):
    held[i] = 1
# A second of its own CPU time, however busy the machine is.
while time.process_time() < 1.0:
    pass
print("burnt", flush=True)
while True:
    time.sleep(60)
"#;

const WEB: &str = r#"
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        status = {"/missing": 404, "/broken": 500}.get(self.path, 200)
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

/// One scrape, parsed.
fn scrape(addr: &str) -> Scrape {
    let (status, body) = get_path(addr, "metrics", "/metrics");
    assert_eq!(status, 200, "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

/// `promtool check metrics` (Debian's `prometheus`) on an exposition: it must pass
/// its checks and lint (names, units, HELP). Required in CI; elsewhere skipped when
/// promtool is missing, saying so.
fn promtool_passes(body: &str) {
    use std::io::Write as _;
    let spawned = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                !in_ci,
                "CI, but promtool does not run ({e}): Debian's prometheus package has it"
            );
            eprintln!("skipping promtool: {e} (Debian: prometheus)");
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(body.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{body}"
    );
}

/// The value of a counter (or gauge) with these labels; 0 when absent.
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{metric}: {other:?}"),
        })
        .sum()
}

fn requests(s: &Scrape, class: &str) -> f64 {
    value(
        s,
        "miren_http_requests_total",
        &[
            ("app", "metered"),
            ("service", "web"),
            ("status_class", class),
        ],
    )
}

#[test]
fn metrics_count_every_request_by_class_with_a_consistent_histogram() {
    let server = TestServer::start(&["--metrics-addr", "127.0.0.1:0"]);
    let metrics = server
        .startup
        .iter()
        .find_map(|l| super::after(l, "metrics on http://").map(str::to_string))
        .unwrap_or_else(|| panic!("{:?}", server.startup));
    let app = app_dir(APP);
    std::fs::write(app.path().join("web.py"), WEB).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(app.path().join("burn.py"), BURN).unwrap_or_else(|e| panic!("{e}"));
    server.deploy(app.path());
    server.ok(["route", "add", "metered.example", "--app", "metered"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get_path(&server.http, "metered.example", "/").0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the app never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let before = scrape(&metrics);
    for _ in 0..100 {
        assert_eq!(get_path(&server.http, "metered.example", "/").0, 200);
    }
    for _ in 0..7 {
        assert_eq!(get_path(&server.http, "metered.example", "/missing").0, 404);
    }
    for _ in 0..3 {
        assert_eq!(get_path(&server.http, "metered.example", "/broken").0, 500);
    }
    let after = scrape(&metrics);
    promtool_passes(&get_path(&metrics, "metrics", "/metrics").1);
    // Exactly what was sent, in the class it got.
    assert_eq!(requests(&after, "2xx") - requests(&before, "2xx"), 100.0);
    assert_eq!(requests(&after, "4xx") - requests(&before, "4xx"), 7.0);
    assert_eq!(requests(&after, "5xx") - requests(&before, "5xx"), 3.0);
    // Every answer's body is "ok": two bytes each.
    let bytes = |s: &Scrape| {
        value(
            s,
            "miren_http_response_bytes_total",
            &[("app", "metered"), ("service", "web")],
        )
    };
    assert_eq!(bytes(&after) - bytes(&before), 220.0);
    // Per instance: both served, and together everything.
    let sandboxes: Vec<f64> = after
        .samples
        .iter()
        .filter(|x| {
            x.metric == "miren_sandbox_http_requests_total"
                && x.labels.get("app") == Some("metered")
        })
        .map(|x| match x.value {
            Value::Counter(v) => v,
            _ => panic!("{x:?}"),
        })
        .collect();
    assert_eq!(sandboxes.len(), 2, "{sandboxes:?}");
    assert_eq!(
        sandboxes.iter().sum::<f64>(),
        requests(&after, "2xx") + 10.0
    );

    // The histogram: cumulative buckets ending in +Inf, which is its count.
    let histogram = after
        .samples
        .iter()
        .find(|x| {
            x.metric == "miren_http_request_duration_seconds"
                && x.labels.get("app") == Some("metered")
        })
        .unwrap_or_else(|| panic!("no histogram"));
    let Value::Histogram(buckets) = &histogram.value else {
        panic!("{histogram:?}");
    };
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].less_than < w[1].less_than && w[0].count <= w[1].count),
        "{buckets:?}"
    );
    let last = buckets.last().unwrap_or_else(|| panic!("buckets"));
    assert!(last.less_than.is_infinite());
    let count = value(
        &after,
        "miren_http_request_duration_seconds_count",
        &[("app", "metered")],
    );
    assert_eq!(last.count, count);
    let total: f64 = ["1xx", "2xx", "3xx", "4xx", "5xx"]
        .iter()
        .map(|c| requests(&after, c))
        .sum();
    assert_eq!(count, total);
    assert!(
        value(
            &after,
            "miren_http_request_duration_seconds_sum",
            &[("app", "metered")]
        ) > 0.0
    );
    // Service DNS counts each answer under its response code: twice the app's web
    // (known from the host by its full name), once a name that does not exist.
    let dns_before = scrape(&metrics);
    for name in [
        "web.metered.app.miren",
        "web.metered.app.miren",
        "nope.metered.app.miren",
    ] {
        super::dig(&server.dns, name, miren_dns::proto::rr::RecordType::A);
    }
    let dns_after = scrape(&metrics);
    let answers = |s: &Scrape, code: &str| value(s, "miren_dns_responses_total", &[("code", code)]);
    assert_eq!(
        answers(&dns_after, "noerror") - answers(&dns_before, "noerror"),
        2.0
    );
    assert_eq!(
        answers(&dns_after, "nxdomain") - answers(&dns_before, "nxdomain"),
        1.0
    );
    // The controller: one active version, and the pools' size decisions.
    assert_eq!(
        value(
            &after,
            "miren_app_versions",
            &[("app", "metered"), ("state", "active")]
        ),
        1.0
    );
    assert!(
        value(
            &after,
            "miren_pool_size_changes_total",
            &[("app", "metered")]
        ) >= 2.0
    );

    // The pools' gauges.
    assert_eq!(
        value(
            &after,
            "miren_pool_ready_instances",
            &[("app", "metered"), ("service", "web")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &after,
            "miren_pool_desired_instances",
            &[("app", "metered"), ("service", "web")]
        ),
        2.0
    );

    // Each sandbox's CPU and memory, from /proc: the burner's second of CPU and its
    // 64 MiB show (within 30 s), and the web instances hold some memory.
    let burner =
        |s: &Scrape, metric: &str| value(s, metric, &[("app", "metered"), ("service", "burner")]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let measured = loop {
        let s = scrape(&metrics);
        if burner(&s, "miren_sandbox_cpu_seconds_total") >= 0.9 {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the burner's CPU never showed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(burner(&measured, "miren_sandbox_memory_bytes") >= 64.0 * 1024.0 * 1024.0);
    let web_memory = measured
        .samples
        .iter()
        .filter(|x| {
            x.metric == "miren_sandbox_memory_bytes" && x.labels.get("service") == Some("web")
        })
        .count();
    assert_eq!(web_memory, 2);

    // On the API too (the socket's mode is its auth).
    use std::io::{Read, Write};
    let mut api =
        std::os::unix::net::UnixStream::connect(server.socket()).unwrap_or_else(|e| panic!("{e}"));
    api.write_all(b"GET /metrics HTTP/1.0\r\nHost: miren\r\n\r\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut answer = String::new();
    api.read_to_string(&mut answer)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.contains("text/plain; version=0.0.4"), "{answer}");
    assert!(
        answer.contains(
            "miren_http_requests_total{app=\"metered\",service=\"web\",status_class=\"2xx\"}"
        ),
        "{answer}"
    );
    assert!(server.stop().success());
}

#[test]
fn app_status_and_top_show_a_bounded_load_within_two_seconds() {
    let server = TestServer::start(&[]);
    let app = app_dir(APP);
    std::fs::write(app.path().join("web.py"), WEB).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(app.path().join("burn.py"), BURN).unwrap_or_else(|e| panic!("{e}"));
    // The deploy returns once the instances are ready and routed: every request
    // counted from here on is one of the loop's.
    server.deploy(app.path());
    server.ok(["route", "add", "metered.example", "--app", "metered"]);
    for i in 0..60 {
        let (path, want) = if i % 3 == 0 {
            ("/broken", 500)
        } else {
            ("/", 200)
        };
        assert_eq!(get_path(&server.http, "metered.example", path).0, want);
    }
    let sent = std::time::Instant::now();

    // No sampling lag: the figures are there as soon as the load is over.
    let status = server.json(&["app", "status", "-a", "metered"]);
    assert!(
        sent.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    let top = server.ok(["top", "--format", "json", "-n", "2"]);
    let web = &status["traffic"][0];
    assert_eq!(web["service"], "web", "{status}");
    assert_eq!(web["requests"], 60, "{web}");
    assert_eq!(web["errors_5xx"], 20, "{web}");
    assert!((web["error_rate"].as_f64().unwrap_or(0.0) - 1.0 / 3.0).abs() < 1e-9);
    assert!(web["req_per_sec"].as_f64().unwrap_or(0.0) > 0.0, "{web}");
    assert!(web["p95_ms"].as_f64().unwrap_or(0.0) > 0.0, "{web}");
    // Both web instances served, together everything; every instance has memory.
    let instances = status["instances"].as_array().cloned().unwrap_or_default();
    assert_eq!(instances.len(), 3, "{status}");
    let web_rps: Vec<f64> = instances
        .iter()
        .filter(|i| i["service"] == "web")
        .map(|i| i["req_per_sec"].as_f64().unwrap_or(0.0))
        .collect();
    assert_eq!(web_rps.len(), 2);
    assert!(web_rps.iter().all(|r| *r > 0.0), "{instances:?}");
    assert!(
        instances
            .iter()
            .all(|i| i["memory_bytes"].as_u64().unwrap_or(0) > 1024 * 1024),
        "{instances:?}"
    );
    assert!(
        instances.iter().all(|i| i["cpu_percent"].is_number()),
        "{instances:?}"
    );

    // `top --format json`: a snapshot per line, each with the app and its traffic.
    let frames: Vec<serde_json::Value> = top
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(frames.len(), 2, "{top}");
    for f in &frames {
        assert!(f["at"].is_string(), "{f}");
        let a = f["apps"]
            .as_array()
            .and_then(|apps| apps.iter().find(|a| a["app"]["name"] == "metered"))
            .unwrap_or_else(|| panic!("{f}"));
        assert_eq!(a["traffic"][0]["requests"], 60, "{a}");
    }

    // The text view says the same for people.
    let text = server.ok(["app", "status", "-a", "metered"]);
    let row = text
        .lines()
        .find(|l| l.starts_with("web ") && l.contains("(33.3%)"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.split_whitespace().nth(1) == Some("60"), "{text}");
}
