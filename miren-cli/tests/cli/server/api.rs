//! The control API answers every failure as `{"error": {"code", "message"}}`, with a
//! status that says whose fault it was, and never echoes a huge input back.

use super::TestServer;
use super::raw;

/// `(status, code, message)` of a call that must fail with a JSON error.
fn failing(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> (u16, String, String) {
    let a = raw::call(&server.socket(), method, path, headers, body);
    assert!(
        a.status >= 400,
        "{method} {path}: {} {}",
        a.status,
        a.text()
    );
    assert_eq!(
        a.header("content-type"),
        Some("application/json"),
        "{method} {path}: {}",
        a.text()
    );
    let (code, message) = a.error();
    (a.status, code, message)
}

const JSON: &str = "Content-Type: application/json";

#[test]
fn every_failure_is_a_json_error_with_the_right_status() {
    let server = TestServer::start(&[]);
    type Case<'a> = (&'a str, &'a str, Vec<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/v1/deploys",
            vec![JSON],
            b"{not json".to_vec(),
            400,
            "invalid",
        ),
        (
            "POST",
            "/v1/deploys",
            vec![],
            b"{}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/v1/deploys",
            vec![JSON],
            br#"{"app_toml": 7, "artifact": "x"}"#.to_vec(),
            422,
            "invalid_body",
        ),
        (
            "PUT",
            "/v1/pools/pool-x/desired",
            vec![JSON],
            br#"{"desired": -1}"#.to_vec(),
            422,
            "invalid_body",
        ),
        (
            "DELETE",
            "/v1/apps/demo?purge_disks=maybe",
            vec![],
            vec![],
            400,
            "invalid",
        ),
        (
            "GET",
            "/v1/logs?app=demo&follow=maybe",
            vec![],
            vec![],
            400,
            "invalid",
        ),
        ("GET", "/v1/logs?sandbox=", vec![], vec![], 400, "invalid"),
        ("GET", "/v1/logs?app=", vec![], vec![], 400, "invalid"),
        (
            "DELETE",
            "/v1/health",
            vec![],
            vec![],
            405,
            "method_not_allowed",
        ),
        (
            "POST",
            "/v1/apps",
            vec![],
            vec![],
            405,
            "method_not_allowed",
        ),
        ("GET", "/v1/nothing", vec![], vec![], 404, "not_found"),
        (
            "PUT",
            "/v1/artifacts?digest=sha256:nope",
            vec![],
            b"x".to_vec(),
            400,
            "invalid",
        ),
    ];
    for (method, path, headers, body, status, code) in cases {
        let got = failing(&server, method, path, &headers, &body);
        assert_eq!(
            (got.0, got.1.as_str()),
            (status, code),
            "{method} {path}: {}",
            got.2
        );
    }
    // The empty sandbox filter used to return every app's logs.
    let (_, _, message) = failing(&server, "GET", "/v1/logs?sandbox=", &[], b"");
    assert!(message.contains("`sandbox` is empty"), "{message}");
}

#[test]
fn a_json_body_over_4_mib_is_refused_with_413() {
    let server = TestServer::start(&[]);
    let toml = format!("name = \"big\"\n# {}\n", "x".repeat(5 << 20));
    let body = serde_json::to_vec(&serde_json::json!({
        "app_toml": toml,
        "artifact": miren_core::model::Digest::of(b"x").as_str(),
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let (status, code, message) = failing(&server, "POST", "/v1/deploys", &[JSON], &body);
    assert_eq!((status, code.as_str()), (413, "too_large"));
    assert!(message.contains("4 MiB"), "{message}");
}

#[test]
fn messages_never_echo_a_10_kb_input() {
    let server = TestServer::start(&[]);
    let long = "a".repeat(10_000);
    for path in [
        format!("/v1/apps/{long}"),
        format!("/v1/logs?app={long}"),
        format!("/v1/sandboxes/{long}/stop"),
        format!("/v1/logs?app=demo&last={long}"),
    ] {
        let method = if path.contains("/stop") {
            "POST"
        } else {
            "GET"
        };
        let (status, _, message) = failing(&server, method, &path, &[], b"");
        assert!(status == 400 || status == 404, "{status}");
        assert!(
            message.len() < 1000,
            "{} bytes: {}",
            message.len(),
            &message[..200]
        );
    }
    let body = format!(r#"{{"app_toml": "name = \"x\"", "artifact": "{long}"}}"#);
    let (_, _, message) = failing(&server, "POST", "/v1/deploys", &[JSON], body.as_bytes());
    assert!(message.len() < 1000, "{} bytes", message.len());
}

#[test]
fn held_partial_heads_on_the_tcp_api_starve_neither_the_proxy_nor_the_socket_and_are_cut_off() {
    use std::io::{Read, Write};
    let server = TestServer::start(&["--api-addr", "127.0.0.1:0"]);
    let api = server.api.clone().unwrap_or_else(|| panic!("api"));
    // More than the API takes at once, each an unfinished head.
    let mut held: Vec<std::net::TcpStream> = (0..300)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&api).unwrap_or_else(|e| panic!("{e}"));
            s.write_all(b"GET /v1/apps HTTP/1.1\r\nHost: x\r\n")
                .unwrap_or_else(|e| panic!("{e}"));
            s
        })
        .collect();
    // The socket API and the proxy answer at once all the same.
    server.ok(["app", "list"]);
    let mut p = std::net::TcpStream::connect(&server.http).unwrap_or_else(|e| panic!("{e}"));
    p.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap_or_else(|e| panic!("{e}"));
    p.write_all(b"GET /.well-known/miren/health HTTP/1.0\r\n\r\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = String::new();
    p.read_to_string(&mut out).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // The server cuts the first ones off once their head is overdue (10 s).
    let first = &mut held[0];
    first
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap_or_else(|e| panic!("{e}"));
    let t0 = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    let n = first.read(&mut buf).unwrap_or(0);
    let said = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(n == 0 || said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(25),
        "{:?}",
        t0.elapsed()
    );
    drop(held);
    // And the TCP API serves again.
    let token = std::fs::read_to_string(server.data.path().join("api-token"))
        .unwrap_or_else(|e| panic!("{e}"));
    crate::miren()
        .args([
            "--server",
            &format!("http://{api}"),
            "--token",
            token.trim(),
            "app",
            "list",
        ])
        .assert()
        .success();
}

#[test]
fn a_wrong_token_of_any_length_is_refused() {
    let server = TestServer::start(&["--api-addr", "127.0.0.1:0"]);
    let api = server.api.clone().unwrap_or_else(|| panic!("api"));
    let token = std::fs::read_to_string(server.data.path().join("api-token"))
        .unwrap_or_else(|e| panic!("{e}"));
    let token = token.trim();
    let mut wrong = token.to_string();
    wrong.replace_range(
        token.len() - 1..,
        if token.ends_with('0') { "1" } else { "0" },
    );
    for t in [wrong.as_str(), &token[..10], "", &format!("{token}0")] {
        crate::miren()
            .args([
                "--server",
                &format!("http://{api}"),
                "--token",
                t,
                "app",
                "list",
            ])
            .assert()
            .code(1);
    }
}
