//! How a runtime reports what its sandboxes do.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::model::{Address, SandboxId, UnixMillis, VersionId};

/// Something that happened to a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// It accepts connections (or, without a port, it runs).
    Ready {
        /// The sandbox.
        sandbox: SandboxId,
        /// Where it listens.
        address: Option<Address>,
    },
    /// It is gone, on its own or stopped.
    Exited {
        /// The sandbox.
        sandbox: SandboxId,
        /// Its exit code; `None` when killed by a signal or never started.
        code: Option<i32>,
        /// What happened, for people ("exited with code 1", "killed by SIGKILL").
        reason: String,
        /// Its last output lines, oldest first, for deploy failure messages.
        last_lines: Vec<String>,
    },
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line a sandbox wrote, as a runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Which stream.
    pub stream: Stream,
    /// The text, without its newline.
    pub line: String,
}

/// One line with everything `miren logs` filters on (SPEC §9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// When it was read.
    pub time: UnixMillis,
    /// Which stream.
    pub stream: Stream,
    /// The app.
    pub app: String,
    /// The service.
    pub service: String,
    /// The sandbox.
    pub sandbox: SandboxId,
    /// The version that started the sandbox.
    pub version: VersionId,
    /// The text.
    pub line: String,
}

/// Where log records go: the log store, a terminal, nowhere.
pub trait LogSink: Send + Sync {
    /// Takes one record. Must not block for long: it runs on the reader's task.
    fn write(&self, record: LogRecord);
}

/// Discards logs.
impl LogSink for () {
    fn write(&self, _record: LogRecord) {}
}

/// How many output lines an exit carries.
const TAIL_LINES: usize = 20;

/// A sandbox's reporting channel, handed to [`Runtime::start`](super::Runtime::start).
/// Cheap to clone; one per sandbox.
#[derive(Clone)]
pub struct EventSink {
    inner: Arc<Inner>,
}

struct Inner {
    sandbox: SandboxId,
    app: String,
    service: String,
    version: VersionId,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    logs: Arc<dyn LogSink>,
    tail: Mutex<VecDeque<String>>,
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSink")
            .field("sandbox", &self.inner.sandbox)
            .finish_non_exhaustive()
    }
}

impl EventSink {
    /// A sink for one sandbox, sending events to `events` and lines to `logs`.
    pub fn new(
        sandbox: SandboxId,
        app: &str,
        service: &str,
        version: VersionId,
        events: mpsc::UnboundedSender<RuntimeEvent>,
        logs: Arc<dyn LogSink>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                sandbox,
                app: app.to_string(),
                service: service.to_string(),
                version,
                events,
                logs,
                tail: Mutex::new(VecDeque::with_capacity(TAIL_LINES)),
            }),
        }
    }

    /// The sandbox it reports for.
    pub fn sandbox(&self) -> &SandboxId {
        &self.inner.sandbox
    }

    /// Reports that the sandbox is ready.
    pub fn ready(&self, address: Option<Address>) {
        let _ = self.inner.events.send(RuntimeEvent::Ready {
            sandbox: self.inner.sandbox.clone(),
            address,
        });
    }

    /// Reports that the sandbox is gone. Call it once, last.
    pub fn exited(&self, code: Option<i32>, reason: impl Into<String>) {
        let last_lines = self
            .inner
            .tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        let _ = self.inner.events.send(RuntimeEvent::Exited {
            sandbox: self.inner.sandbox.clone(),
            code,
            reason: reason.into(),
            last_lines,
        });
    }

    /// Reports that the sandbox is gone, with the last lines it wrote as seen where it
    /// ran (a node of a cluster, reporting through the store). Call it once, last.
    pub fn exited_with(
        &self,
        code: Option<i32>,
        reason: impl Into<String>,
        last_lines: Vec<String>,
    ) {
        let _ = self.inner.events.send(RuntimeEvent::Exited {
            sandbox: self.inner.sandbox.clone(),
            code,
            reason: reason.into(),
            last_lines,
        });
    }

    /// Reports one output line.
    pub fn log(&self, line: LogLine) {
        if let Ok(mut tail) = self.inner.tail.lock() {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.line.clone());
        }
        self.inner.logs.write(LogRecord {
            time: now_millis(),
            stream: line.stream,
            app: self.inner.app.clone(),
            service: self.inner.service.clone(),
            sandbox: self.inner.sandbox.clone(),
            version: self.inner.version.clone(),
            line: line.line,
        });
    }

    /// A sink whose events come out of the returned receiver, with logs discarded:
    /// for testing a runtime on its own.
    pub fn channel(
        sandbox: SandboxId,
        app: &str,
        service: &str,
        version: VersionId,
    ) -> (Self, mpsc::UnboundedReceiver<RuntimeEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self::new(sandbox, app, service, version, tx, Arc::new(())),
            rx,
        )
    }
}

/// Wall-clock now, for records people read. Decisions use tokio's clock instead.
pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as UnixMillis)
        .unwrap_or(0)
}
