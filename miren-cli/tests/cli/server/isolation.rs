//! Heavy API work (big app.toml bodies parsed and validated, four at once) does not
//! hold up the proxy or the API's own health check.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::{TestServer, raw};

/// A ~3.5 MiB app.toml that validates in full and is refused at its end.
fn big_app_toml() -> String {
    let mut t = String::from("name = \"big\"\n[services.web]\ncommand = \"python3 web.py\"\n");
    let value = "v".repeat(64);
    for i in 0..32_000 {
        t.push_str(&format!(
            "[[services.web.env]]\nkey = \"K{i}\"\nvalue = \"{value}\"\n"
        ));
    }
    t.push_str("[services.worker]\ncomand = \"x\"\n");
    t
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

#[test]
fn health_checks_stay_fast_while_four_big_deploys_are_parsed() {
    let server = TestServer::start(&[]);
    let socket = server.socket();
    let body = serde_json::to_vec(&serde_json::json!({
        "app_toml": big_app_toml(),
        "artifact": miren_core::model::Digest::of(b"none").as_str(),
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        body.len() < 4 << 20,
        "{} bytes: under the JSON limit",
        body.len()
    );
    let (proxy, api, took) = std::thread::scope(|s| {
        let deploys: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut took = Vec::new();
                    for _ in 0..3 {
                        let t0 = Instant::now();
                        let a = raw::call(
                            &socket,
                            "POST",
                            "/v1/deploys",
                            &["Content-Type: application/json"],
                            &body,
                        );
                        took.push(t0.elapsed());
                        assert_eq!(a.status, 400, "{}", a.text());
                    }
                    took
                })
            })
            .collect();
        let (mut proxy, mut api) = (Vec::new(), Vec::new());
        // Bounded: 2,000 checks or a minute.
        let deadline = Instant::now() + Duration::from_secs(60);
        while deploys.iter().any(|d| !d.is_finished())
            && proxy.len() < 2000
            && Instant::now() < deadline
        {
            let t0 = Instant::now();
            let mut c =
                std::net::TcpStream::connect(&server.http).unwrap_or_else(|e| panic!("{e}"));
            c.write_all(b"GET /.well-known/miren/health HTTP/1.0\r\n\r\n")
                .unwrap_or_else(|e| panic!("{e}"));
            let mut out = Vec::new();
            c.read_to_end(&mut out).unwrap_or_else(|e| panic!("{e}"));
            proxy.push(t0.elapsed());
            assert!(out.starts_with(b"HTTP/1.1 200"));
            let t0 = Instant::now();
            let a = raw::call(&socket, "GET", "/v1/health", &[], b"");
            api.push(t0.elapsed());
            assert_eq!(a.status, 200);
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut took = Vec::new();
        for d in deploys {
            took.extend(d.join().unwrap_or_else(|_| panic!("a deploy thread")));
        }
        (proxy, api, took)
    });
    assert!(
        proxy.len() >= 20,
        "only {} checks ran while the deploys did",
        proxy.len()
    );
    let (pp, ap) = (p99(proxy.clone()), p99(api.clone()));
    let shortest = took.iter().min().copied().unwrap_or_default();
    eprintln!(
        "{} checks: proxy p99 {pp:?}, API p99 {ap:?}; a deploy took {shortest:?} or more",
        proxy.len()
    );
    // A check that waited behind a deploy's parsing would take as long as it. Alone
    // on this machine the p99s are 5-8 ms (debug build); the bound leaves room for the
    // rest of the suite running beside this test, not for a stall.
    let bound = (shortest / 4).min(Duration::from_millis(40));
    assert!(pp < bound, "proxy health p99 {pp:?} (bound {bound:?})");
    assert!(ap < bound, "API health p99 {ap:?} (bound {bound:?})");
}
