//! What every listener of the process runtime's networking shares: what it reaches
//! (a port of an app's service), and its accept loop's task.

use std::net::SocketAddr;

use crate::lock;
use crate::serving::Serving;

/// What a listener reaches: a port of an app's service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// The app.
    pub app: String,
    /// Its service.
    pub service: String,
    /// `None`: the port `PORT` names; else an extra port by name.
    pub port: Option<String>,
}

impl Target {
    /// The port `PORT` names of `service`.
    pub fn service(app: &str, service: &str) -> Self {
        Self {
            app: app.to_string(),
            service: service.to_string(),
            port: None,
        }
    }

    /// Its serving instances now.
    pub fn instances<'v>(&self, view: &'v Serving) -> &'v [SocketAddr] {
        view.at(&self.app, &self.service, self.port.as_deref())
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.port {
            None => write!(f, "{}/{}", self.app, self.service),
            Some(p) => write!(f, "{}/{} port `{p}`", self.app, self.service),
        }
    }
}

/// A listener's accept loop: it stops when dropped, or, awaitably, on `close`.
pub(crate) struct ListenTask {
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    addr: SocketAddr,
}

impl ListenTask {
    pub(crate) fn new(addr: SocketAddr, task: tokio::task::JoinHandle<()>) -> Self {
        Self {
            task: std::sync::Mutex::new(Some(task)),
            addr,
        }
    }

    /// Where it listens.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening; returns once the address is free again.
    pub(crate) async fn close(&self) {
        let task = lock(&self.task).take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for ListenTask {
    fn drop(&mut self) {
        if let Some(t) = lock(&self.task).take() {
            t.abort();
        }
    }
}
