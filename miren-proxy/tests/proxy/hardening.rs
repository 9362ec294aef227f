//! What a hostile or broken client can't do: leave out Host, hold an instance's
//! connection with a body that never comes, pose as another address through
//! `X-Forwarded-For`; and the request id every answer carries back.

use std::time::Duration;

use miren_proxy::ProxyConfig;
use tokio::io::AsyncWriteExt;

use super::{FIXED_2, Harness, empty, read_response, read_until_closed, web_app};

/// The value after `key=` in the test backend's answer.
fn field<'a>(body: &'a str, key: &str) -> &'a str {
    body.split(' ')
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_request_id_the_app_saw() {
    let h = Harness::new(ProxyConfig::default()).await;
    h.deploy(&web_app("shop", FIXED_2)).await;
    h.route("shop.example", "shop").await;
    // Made by the proxy: the app and the client see the same one.
    let (s, headers, body) = h.request("GET", "shop.example", "/", empty()).await;
    assert_eq!(s, 200);
    let rid = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(rid.len(), 22, "{headers:?}");
    assert_eq!(field(&body, "rid"), rid);
    // Sent by the client: kept and returned.
    let req = hyper::Request::builder()
        .uri(format!("http://{}/", h.addr))
        .header("host", "shop.example")
        .header("x-request-id", "client-chose-this")
        .body(empty())
        .expect("request");
    let resp = h.client.request(req).await.expect("answer");
    assert_eq!(
        resp.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("client-chose-this")
    );
    // The proxy's own answers too: no route, and a request it refuses outright.
    let (s, headers, _) = h.request("GET", "nowhere.example", "/", empty()).await;
    assert_eq!(s, 404);
    assert!(headers.contains_key("x-request-id"), "{headers:?}");
    let mut c = tokio::net::TcpStream::connect(h.addr)
        .await
        .expect("connect");
    c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        .await
        .expect("write");
    let all = read_until_closed(&mut c).await;
    assert!(
        all.starts_with("HTTP/1.1 400 ") && all.contains("x-request-id: "),
        "{all}"
    );
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http11_without_host_is_400() {
    let h = Harness::new(ProxyConfig::default()).await;
    h.deploy(&web_app("shop", FIXED_2)).await;
    h.route("*", "shop").await;
    let mut c = tokio::net::TcpStream::connect(h.addr)
        .await
        .expect("connect");
    c.write_all(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n")
        .await
        .expect("write");
    let all = read_until_closed(&mut c).await;
    assert!(
        all.starts_with("HTTP/1.1 400 ") && all.ends_with("missing Host header\n"),
        "{all}"
    );
    // HTTP/1.0 needs none: the default route serves it.
    let mut c = tokio::net::TcpStream::connect(h.addr)
        .await
        .expect("connect");
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").await.expect("write");
    let all = read_until_closed(&mut c).await;
    assert!(all.starts_with("HTTP/1.1 200 "), "{all}");
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_coming_gets_408_and_lets_the_instance_go() {
    let config = ProxyConfig {
        body_idle_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let h = Harness::new(config).await;
    h.deploy(&web_app("shop", "mode = \"fixed\"\nnum_instances = 1"))
        .await;
    h.route("shop.example", "shop").await;
    let mut c = tokio::io::BufReader::new(
        tokio::net::TcpStream::connect(h.addr)
            .await
            .expect("connect"),
    );
    c.get_mut()
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 1000\r\n\r\nonly this",
        )
        .await
        .expect("write");
    let (head, body) = read_response(&mut c, false).await;
    assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
    assert!(body.contains("no byte for 300ms"), "{body}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    // The instance is free for the next one.
    let (s, body) = h.get("shop.example", "/").await;
    assert_eq!(s, 200, "{body}");
    h.ctl.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_is_replaced_unless_the_client_is_trusted() {
    for (trust, want) in [
        (vec![], "xff=127.0.0.1 "),
        (vec!["127.0.0.0/8"], "xff=6.6.6.6, 127.0.0.1 "),
    ] {
        let config = ProxyConfig {
            trust_forwarded_from: trust.iter().map(|c| c.parse().expect("cidr")).collect(),
            ..ProxyConfig::default()
        };
        let h = Harness::new(config).await;
        h.deploy(&web_app("shop", FIXED_2)).await;
        h.route("shop.example", "shop").await;
        let req = hyper::Request::builder()
            .uri(format!("http://{}/", h.addr))
            .header("host", "shop.example")
            .header("x-forwarded-for", "6.6.6.6")
            .body(empty())
            .expect("request");
        let resp = h.client.request(req).await.expect("answer");
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .expect("body")
            .to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        assert!(body.contains(want), "trusting {trust:?}: {body}");
        h.ctl.shutdown().await.expect("shutdown");
    }
}
