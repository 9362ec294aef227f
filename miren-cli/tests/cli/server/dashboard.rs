//! The dashboard in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver): nothing without the login link; with
//! it, the deployed app, an instance count that follows `set-desired`, the app's log
//! lines live, and a rollback clicked in the page. A screenshot is left in the tests'
//! output directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use super::{TestServer, demo_copy, get_path};

/// The driver, or why the test cannot run here (it must in CI).
fn chromedriver() -> Option<PathBuf> {
    let found = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let required = std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("MIREN_TEST_BROWSER").is_ok_and(|v| v == "1");
    assert!(
        found.is_some() || !required,
        "CI or MIREN_TEST_BROWSER=1, but chromedriver is not installed (Debian: chromium-driver)"
    );
    if found.is_none() {
        eprintln!("skipping: chromedriver is not installed (Debian: chromium chromium-driver)");
    }
    found
}

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(path: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let binary = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .iter()
        .find(|p| Path::new(p).exists())
        .copied()
        .unwrap_or("chromium");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": binary,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1280,1400",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("starting Chromium: {e}"))
}

/// Waits until `f` gives something, `within` at most (then panics with `what`).
async fn until<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} (after {within:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of the first element `css` finds, if any.
async fn text(c: &Client, css: &str) -> Option<String> {
    let e = c.find(Locator::Css(css)).await.ok()?;
    e.text().await.ok()
}

#[test]
fn the_dashboard_shows_the_app_live_and_rolls_it_back_from_the_page() {
    let Some(driver_path) = chromedriver() else {
        return;
    };
    let server = TestServer::start(&["--ui-addr", "127.0.0.1:0"]);
    let app = demo_copy();
    server.deploy(app.path());
    server.ok(["route", "add", "demo.example", "--app", "demo"]);
    // v2, so that v1 can be rolled back to.
    server.ok(["env", "set", "-a", "demo", "GREETING=hello"]);
    let url = server.ok(["dashboard"]);
    let base = url
        .split("/login")
        .next()
        .and_then(|b| b.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("{url}"))
        .to_string();

    // Without the code: 401 and nothing else, for the page and for the API.
    for path in [
        "/",
        "/dashboard.js",
        "/api/v1/apps",
        "/api/v1/status",
        "/nope",
    ] {
        let (status, body) = get_path(&base, &base, path);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(!body.contains("demo"), "{path}: {body}");
    }
    let (status, _) = get_path(&base, &base, "/login?code=0123456789abcdef");
    assert_eq!(status, 401, "a made-up code");

    let driver = Driver::start(&driver_path);
    let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let c = browser(&driver, profile.path()).await;
        // The page without logging in: nothing of the app.
        c.goto(&format!("http://{base}/"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let shown = c.source().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !shown.contains("demo") && shown.contains("miren dashboard"),
            "{shown}"
        );

        // The link logs in (and goes to the page); the app is listed.
        c.goto(&url).await.unwrap_or_else(|e| panic!("{e}"));
        let row = r#"#apps tr[data-app="demo"]"#;
        until(Duration::from_secs(10), "the app is listed", || async {
            text(&c, &format!("{row} td.instances"))
                .await
                .filter(|t| t == "3")
        })
        .await;
        assert_eq!(
            c.current_url()
                .await
                .map(|u| u.path().to_string())
                .ok()
                .as_deref(),
            Some("/"),
            "the code does not stay in the address bar"
        );
        // The link was for once.
        let (status, _) = get_path(
            &base,
            &base,
            &format!("/login?{}", url.split('?').nth(1).unwrap_or("")),
        );
        assert_eq!(status, 401, "a used link");

        // A set-desired shows on the page within 3 s.
        let pools = server.json(&["sandbox-pool", "list", "-a", "demo"]);
        let worker = pools
            .as_array()
            .and_then(|p| {
                p.iter().find(|p| {
                    p["service"] == "worker" && !p["versions"].as_array().is_none_or(Vec::is_empty)
                })
            })
            .and_then(|p| p["id"].as_str())
            .unwrap_or_else(|| panic!("{pools}"))
            .to_string();
        server.ok(["sandbox-pool", "set-desired", &worker, "2"]);
        let set = Instant::now();
        until(
            Duration::from_secs(3),
            "4 instances on the page",
            || async {
                text(&c, &format!("{row} td.instances"))
                    .await
                    .filter(|t| t == "4")
            },
        )
        .await;
        eprintln!(
            "the page showed the new instance {:?} after set-desired",
            set.elapsed()
        );
        let why = text(&c, r#"#services tr[data-service="worker"]"#).await;
        assert!(why.is_some_and(|w| w.contains('2')), "the worker's row");

        // A line the app writes shows live.
        let marker = format!("/seen-live-{}", std::process::id());
        assert_eq!(get_path(&server.http, "demo.example", &marker).0, 200);
        until(
            Duration::from_secs(5),
            "the app's log line on the page",
            || async { text(&c, "#logs").await.filter(|t| t.contains(&marker)) },
        )
        .await;
        // Its traffic too.
        until(
            Duration::from_secs(3),
            "the request in the traffic figures",
            || async {
                text(&c, r#"#traffic [data-service="web"] .requests"#)
                    .await
                    .filter(|t| t.parse::<u64>().is_ok_and(|n| n >= 1))
            },
        )
        .await;

        // A rollback clicked in the page (twice: the first arms the button).
        let button = r#"button.rollback[data-version="v1"]"#;
        for _ in 0..2 {
            let b = until(Duration::from_secs(10), "the rollback button", || async {
                c.find(Locator::Css(button)).await.ok()
            })
            .await;
            b.click().await.unwrap_or_else(|e| panic!("{e}"));
        }
        until(
            Duration::from_secs(30),
            "the rollback said it is done",
            || async {
                text(&c, "#rollout")
                    .await
                    .filter(|t| t.contains("v1 is active"))
            },
        )
        .await;
        let status = server.json(&["app", "status", "-a", "demo"]);
        assert_eq!(status["app"]["number"], 1, "{status}");
        until(Duration::from_secs(5), "v1 shown active", || async {
            text(&c, r#"#apps tr[data-app="demo"] td:nth-child(2)"#)
                .await
                .filter(|t| t == "v1")
        })
        .await;

        let png = c.screenshot().await.unwrap_or_else(|e| panic!("{e}"));
        let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
        std::fs::write(&shot, png).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("screenshot: {}", shot.display());
        let _ = c.close().await;
    });
}
