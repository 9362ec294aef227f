//! Talking to a server's control API: over its Unix socket, or over TCP with a token.
//! `calls` has a typed method per API call; this module is the transport.

mod calls;
pub mod locate;

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::ErrorBody;
pub use calls::LogQuery;
pub(crate) use calls::q as encode;
pub(crate) use calls::with_query;
pub use locate::{Located, Source, locate};

/// Where the server is.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A Unix socket.
    Unix(PathBuf),
    /// `host:port`, with the bearer token.
    Tcp {
        /// `host:port`.
        authority: String,
        /// The token.
        token: Option<String>,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp { authority, .. } => write!(f, "http://{authority}"),
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers there.
    #[error("{}", unreachable_message(.located, .source))]
    Unreachable {
        /// Where we looked, and why there.
        located: Box<Located>,
        /// The connect error.
        source: std::io::Error,
    },
    /// The server said no.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// Its error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The conversation broke.
    #[error("talking to the server: {0}")]
    Protocol(String),
    /// Something failed here, not at the server (packing the app dir, writing the
    /// output).
    #[error("{0}")]
    Local(String),
    /// The command line doesn't say enough (which app?), or says something impossible.
    #[error("{0}")]
    Usage(String),
    /// What was given is invalid (an app.toml with errors): nothing was sent.
    #[error("{0}")]
    Invalid(String),
}

fn unreachable_message(l: &Located, e: &std::io::Error) -> String {
    let mut m = format!(
        "no miren server answers at {} ({}): {e}",
        l.endpoint, l.source
    );
    for p in &l.passed_over {
        m.push_str(&format!("\n  also looked at {p}"));
    }
    m.push_str(
        "\n  start one with `miren server` (or `miren up` in an app directory), or point at one with --server or MIREN_SERVER",
    );
    m
}

/// An API client.
#[derive(Debug, Clone)]
pub struct Client {
    located: Located,
}

impl Client {
    /// A client of the server [`locate`] found.
    pub fn new(located: Located) -> Self {
        Self { located }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<Response<Incoming>, ClientError> {
        self.send_upgrading(method, path, body, None).await
    }

    /// Asks for the attach protocol on `path` and returns the upgraded connection.
    pub async fn upgrade(
        &self,
        path: &str,
        protocol: &str,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>, ClientError> {
        let resp = self
            .send_upgrading(Method::GET, path, None, Some(protocol))
            .await?;
        hyper::upgrade::on(resp)
            .await
            .map(TokioIo::new)
            .map_err(|e| ClientError::Protocol(format!("upgrading the connection: {e}")))
    }

    async fn send_upgrading(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        upgrade: Option<&str>,
    ) -> Result<Response<Incoming>, ClientError> {
        let unreachable = |source| ClientError::Unreachable {
            located: Box::new(self.located.clone()),
            source,
        };
        let proto = |e: hyper::Error| ClientError::Protocol(e.to_string());
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "miren");
        let (data, ctype) = body.unwrap_or_default();
        if !ctype.is_empty() {
            req = req.header("content-type", ctype);
        }
        if let Some(p) = upgrade {
            req = req.header("connection", "upgrade").header("upgrade", p);
        }
        let mut sender = match &self.located.endpoint {
            Endpoint::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(unreachable)?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                    .await
                    .map_err(proto)?;
                tokio::spawn(conn.with_upgrades());
                sender
            }
            Endpoint::Tcp { authority, token } => {
                let s = tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .map_err(unreachable)?;
                if let Some(t) = token {
                    req = req.header("authorization", format!("Bearer {t}"));
                }
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                    .await
                    .map_err(proto)?;
                tokio::spawn(conn.with_upgrades());
                sender
            }
        };
        let req = req
            .body(Full::new(Bytes::from(data)))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(proto)?;
        let switched = upgrade.is_some() && resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        if resp.status().is_success() || switched {
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(proto)?.to_bytes();
        Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => ClientError::Api {
                status,
                code: e.error.code,
                message: e.error.message,
            },
            Err(_) => ClientError::Api {
                status,
                code: "http".into(),
                message: format!("{status}: {}", String::from_utf8_lossy(&bytes)),
            },
        })
    }

    async fn json<T: DeserializeOwned>(resp: Response<Incoming>) -> Result<T, ClientError> {
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("unexpected answer: {e}")))
    }

    /// GET a JSON value.
    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::json(self.send(Method::GET, path, None).await?).await
    }

    /// A request with a JSON body (or none), answered with JSON.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let body = body.map(|b| {
            (
                serde_json::to_vec(b).unwrap_or_default(),
                "application/json",
            )
        });
        Self::json(self.send(method, path, body).await?).await
    }

    /// Uploads bytes with PUT.
    async fn put_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        bytes: Vec<u8>,
    ) -> Result<T, ClientError> {
        Self::json(
            self.send(Method::PUT, path, Some((bytes, "application/x-tar")))
                .await?,
        )
        .await
    }

    /// A request answered with NDJSON: each line decoded and handed to `each` as it
    /// arrives. `each` returns false to stop.
    async fn stream<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        mut each: impl FnMut(T) -> bool,
    ) -> Result<(), ClientError> {
        let body = body.map(|b| {
            (
                serde_json::to_vec(b).unwrap_or_default(),
                "application/json",
            )
        });
        let mut resp = self.send(method, path, body).await?.into_body();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = resp.frame().await {
            let frame = frame.map_err(|e| ClientError::Protocol(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                let v: T = serde_json::from_slice(&line)
                    .map_err(|e| ClientError::Protocol(format!("unexpected line: {e}")))?;
                if !each(v) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
