//! Sandbox output, kept per app on disk (SPEC §9): every line with its time, stream,
//! app, service, sandbox and version; bounded per app by size and age; read back by
//! app, service or sandbox, and followed live.
//!
//! Each app has a directory of NDJSON segments: `current.ndjson` is appended to and,
//! past [`SEGMENT_BYTES`], renamed to `<first seq>.ndjson`. The oldest segments go
//! when the app's total passes its budget or they are older than the age limit.
//! Every record carries a sequence number, so a follower that read the files and then
//! listens live skips nothing and repeats nothing.
//!
//! What sandboxes write waits for the writer in a queue of at most [`QUEUE_BYTES`]: a
//! sandbox that writes faster than lines can be stored loses the excess, counted, and
//! its log says so (`… 1234 lines dropped …`) once the writer catches up. The server's
//! memory stays bounded whatever a sandbox prints; the sandbox is never slowed.
//! Deleting an app goes through the same queue: what was still waiting of it is
//! dropped, never written back.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use miren_core::model::SandboxId;
use miren_core::runtime::{LogRecord, LogSink};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

/// A segment is closed past this size.
pub const SEGMENT_BYTES: u64 = 4 << 20;

/// Lines waiting for the writer take at most this much memory; the rest is dropped.
pub const QUEUE_BYTES: usize = 16 << 20;

/// What a queued line costs beyond its text (the record's other fields).
const RECORD_OVERHEAD: usize = 160;

/// Retention per app.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Total bytes kept per app (SPEC default 64 MiB).
    pub bytes: u64,
    /// Segments older than this go (SPEC default 7 days).
    pub age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            bytes: 64 << 20,
            age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// A stored line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// Order of arrival across the server.
    pub seq: u64,
    /// The line.
    #[serde(flatten)]
    pub record: LogRecord,
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// The app (required unless `sandbox` is given).
    pub app: Option<String>,
    /// Only this service.
    pub service: Option<String>,
    /// Only this sandbox.
    pub sandbox: Option<String>,
    /// Only lines at or after this time (Unix ms).
    pub since: Option<u64>,
}

impl Filter {
    /// Whether `r` passes.
    pub fn matches(&self, r: &LogRecord) -> bool {
        self.app.as_ref().is_none_or(|a| *a == r.app)
            && self.service.as_ref().is_none_or(|s| *s == r.service)
            && self
                .sandbox
                .as_ref()
                .is_none_or(|s| r.sandbox.as_str() == s || r.sandbox.as_str().ends_with(s.as_str()))
            && self.since.is_none_or(|t| r.time >= t)
    }
}

/// The log store. Cheap to clone.
#[derive(Clone)]
pub struct LogStore {
    dir: Arc<PathBuf>,
    tx: mpsc::UnboundedSender<Msg>,
    live: broadcast::Sender<Arc<Stored>>,
    queue: Arc<Queue>,
}

enum Msg {
    Line(LogRecord),
    Flush(tokio::sync::oneshot::Sender<()>),
    Remove(String, u64, tokio::sync::oneshot::Sender<()>),
}

/// The queue's accounting, shared by the sinks and the writer.
struct Queue {
    /// Bytes of lines sent and not yet taken by the writer.
    pending: AtomicUsize,
    budget: usize,
    /// Lines dropped per sandbox since its last notice, with one of them (for the
    /// notice's app, service and version).
    dropped: Mutex<HashMap<SandboxId, (u64, LogRecord)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn cost(r: &LogRecord) -> usize {
    r.line.len() + RECORD_OVERHEAD
}

/// Hands records to the store's writer task; never blocks the reader of a pipe.
struct Sink {
    tx: mpsc::UnboundedSender<Msg>,
    queue: Arc<Queue>,
}

impl LogSink for Sink {
    fn write(&self, record: LogRecord) {
        let size = cost(&record);
        let q = &self.queue;
        if q.pending.fetch_add(size, Ordering::AcqRel) + size > q.budget {
            q.pending.fetch_sub(size, Ordering::AcqRel);
            let mut dropped = lock(&q.dropped);
            dropped
                .entry(record.sandbox.clone())
                .and_modify(|(n, _)| *n += 1)
                .or_insert((1, record));
            return;
        }
        if self.tx.send(Msg::Line(record)).is_err() {
            q.pending.fetch_sub(size, Ordering::AcqRel);
        }
    }
}

impl LogStore {
    /// Opens the store in `dir` and starts its writer. Needs a tokio runtime.
    pub fn open(dir: PathBuf, retention: Retention) -> std::io::Result<Self> {
        Self::open_with_queue(dir, retention, QUEUE_BYTES)
    }

    /// [`open`](Self::open) with a queue of `queue_bytes`.
    pub fn open_with_queue(
        dir: PathBuf,
        retention: Retention,
        queue_bytes: usize,
    ) -> std::io::Result<Self> {
        fs::create_dir_all(&dir)?;
        let next_seq = last_seq(&dir)? + 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let (live, _) = broadcast::channel(4096);
        let queue = Arc::new(Queue {
            pending: AtomicUsize::new(0),
            budget: queue_bytes,
            dropped: Mutex::new(HashMap::new()),
        });
        let writer = Writer {
            dir: dir.clone(),
            retention,
            next_seq,
            open: HashMap::new(),
            live: live.clone(),
            queue: queue.clone(),
            removed: HashMap::new(),
        };
        tokio::spawn(writer.run(rx));
        Ok(Self {
            dir: Arc::new(dir),
            tx,
            live,
            queue,
        })
    }

    /// The sink the controller writes sandbox output to.
    pub fn sink(&self) -> Arc<dyn LogSink> {
        Arc::new(Sink {
            tx: self.tx.clone(),
            queue: self.queue.clone(),
        })
    }

    /// Waits until every line handed over so far is on disk.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// New lines from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Stored>> {
        self.live.subscribe()
    }

    /// Stored lines matching `filter`, oldest first; at most the last `limit`.
    pub async fn read(&self, filter: Filter, limit: usize) -> std::io::Result<Vec<Stored>> {
        self.flush().await;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || read_dir(&dir, &filter, limit))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Forgets an app's lines: those stored, and those written until now still
    /// waiting in the queue. Lines written later (a new deploy of the same name) are
    /// kept.
    pub async fn remove_app(&self, app: &str) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let now = miren_core::runtime::now_millis();
        if self.tx.send(Msg::Remove(app.to_string(), now, tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn app_dirs(dir: &Path, app: Option<&str>) -> Vec<PathBuf> {
    match app {
        Some(a) => vec![dir.join(a)],
        None => fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Segments of one app in order: numbered ones by number, then `current`.
fn segments(app_dir: &Path) -> Vec<PathBuf> {
    let mut numbered: Vec<(u64, PathBuf)> = fs::read_dir(app_dir)
        .map(|d| {
            d.filter_map(|e| {
                let p = e.ok()?.path();
                let n = p.file_stem()?.to_str()?.parse().ok()?;
                Some((n, p))
            })
            .collect()
        })
        .unwrap_or_default();
    numbered.sort();
    let mut out: Vec<PathBuf> = numbered.into_iter().map(|(_, p)| p).collect();
    let current = app_dir.join("current.ndjson");
    if current.exists() {
        out.push(current);
    }
    out
}

fn read_dir(dir: &Path, filter: &Filter, limit: usize) -> std::io::Result<Vec<Stored>> {
    let mut out: Vec<Stored> = Vec::new();
    for app_dir in app_dirs(dir, filter.app.as_deref()) {
        for seg in segments(&app_dir) {
            let Ok(f) = fs::File::open(&seg) else {
                continue;
            };
            for line in BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                // A torn last line (crash mid-write) is skipped, not fatal.
                if let Ok(s) = serde_json::from_str::<Stored>(&line)
                    && filter.matches(&s.record)
                {
                    out.push(s);
                }
            }
        }
    }
    out.sort_by_key(|s| s.seq);
    if out.len() > limit {
        out.drain(..out.len() - limit);
    }
    Ok(out)
}

fn last_seq(dir: &Path) -> std::io::Result<u64> {
    let mut last = 0;
    for app_dir in app_dirs(dir, None) {
        if let Some(seg) = segments(&app_dir).last()
            && let Ok(f) = fs::File::open(seg)
        {
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                if let Ok(s) = serde_json::from_str::<Stored>(&line) {
                    last = last.max(s.seq);
                }
            }
        }
    }
    Ok(last)
}

struct Writer {
    dir: PathBuf,
    retention: Retention,
    next_seq: u64,
    /// Open `current` segments per app, with their size.
    open: HashMap<String, (std::io::BufWriter<fs::File>, u64)>,
    live: broadcast::Sender<Arc<Stored>>,
    queue: Arc<Queue>,
    /// Deleted apps, with when: their lines written before then are dropped.
    removed: HashMap<String, u64>,
}

/// One turn of the writer: lines to store, then removals, in arrival order.
enum Work {
    Lines(Vec<LogRecord>),
    Remove(String, u64),
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            let mut waiters = Vec::new();
            let mut work: Vec<Work> = Vec::new();
            let mut lines = 0;
            let mut next = Some(msg);
            while let Some(m) = next.take() {
                match m {
                    Msg::Line(r) => {
                        self.queue.pending.fetch_sub(cost(&r), Ordering::AcqRel);
                        lines += 1;
                        match work.last_mut() {
                            Some(Work::Lines(b)) => b.push(r),
                            _ => work.push(Work::Lines(vec![r])),
                        }
                    }
                    Msg::Flush(w) => waiters.push(w),
                    Msg::Remove(app, at, w) => {
                        work.push(Work::Remove(app, at));
                        waiters.push(w);
                    }
                }
                if lines < 4096 {
                    next = rx.try_recv().ok();
                }
            }
            // What was dropped is said once there is room again.
            let notices = self.notices();
            if !notices.is_empty() {
                work.push(Work::Lines(notices));
            }
            // Disk work off the async threads.
            let (me, written) = tokio::task::spawn_blocking(move || {
                let mut written = Vec::new();
                for w in work {
                    match w {
                        Work::Lines(batch) => written.extend(self.write_batch(batch)),
                        Work::Remove(app, at) => self.remove(app, at),
                    }
                }
                (self, written)
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            self = me;
            for s in written {
                let _ = self.live.send(Arc::new(s));
            }
            for w in waiters {
                let _ = w.send(());
            }
        }
    }

    /// A line per sandbox that lost lines, saying how many (when the queue has room).
    fn notices(&self) -> Vec<LogRecord> {
        if self.queue.pending.load(Ordering::Acquire) > self.queue.budget / 2 {
            return Vec::new();
        }
        let dropped = std::mem::take(&mut *lock(&self.queue.dropped));
        dropped
            .into_values()
            .map(|(n, mut r)| {
                r.line = format!(
                    "… {n} line{} dropped: written faster than the server could store them",
                    if n == 1 { "" } else { "s" }
                );
                r.time = miren_core::runtime::now_millis();
                r
            })
            .collect()
    }

    fn remove(&mut self, app: String, at: u64) {
        self.open.remove(&app);
        let dir = self.dir.join(&app);
        if let Err(e) = fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("removing the logs of {app}: {e}");
        }
        lock(&self.queue.dropped).retain(|_, (_, r)| r.app != app);
        self.removed.insert(app, at);
    }

    fn write_batch(&mut self, batch: Vec<LogRecord>) -> Vec<Stored> {
        let mut written = Vec::with_capacity(batch.len());
        let mut touched = Vec::new();
        for record in batch {
            // Still queued when its app was deleted: gone with it.
            if self
                .removed
                .get(&record.app)
                .is_some_and(|at| record.time <= *at)
            {
                continue;
            }
            let stored = Stored {
                seq: self.next_seq,
                record,
            };
            self.next_seq += 1;
            let app = stored.record.app.clone();
            if let Err(e) = self.append(&app, &stored) {
                tracing::warn!("writing logs of {app}: {e}");
            }
            if !touched.contains(&app) {
                touched.push(app);
            }
            written.push(stored);
        }
        for app in touched {
            if let Some((w, _)) = self.open.get_mut(&app) {
                let _ = w.flush();
            }
        }
        written
    }

    fn append(&mut self, app: &str, s: &Stored) -> std::io::Result<()> {
        let app_dir = self.dir.join(app);
        if !self.open.contains_key(app) {
            fs::create_dir_all(&app_dir)?;
            let f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(app_dir.join("current.ndjson"))?;
            let size = f.metadata()?.len();
            self.open
                .insert(app.to_string(), (std::io::BufWriter::new(f), size));
        }
        let mut line = serde_json::to_vec(s).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let rotate = {
            let Some((w, size)) = self.open.get_mut(app) else {
                return Ok(());
            };
            w.write_all(&line)?;
            *size += line.len() as u64;
            *size >= SEGMENT_BYTES
        };
        if rotate {
            if let Some((mut w, _)) = self.open.remove(app) {
                w.flush()?;
            }
            fs::rename(
                app_dir.join("current.ndjson"),
                app_dir.join(format!("{:020}.ndjson", s.seq)),
            )?;
            self.enforce(&app_dir)?;
        }
        Ok(())
    }

    /// Drops the oldest closed segments beyond the size budget or the age limit.
    fn enforce(&self, app_dir: &Path) -> std::io::Result<()> {
        let segs = segments(app_dir);
        let sizes: Vec<(PathBuf, u64, SystemTime)> = segs
            .into_iter()
            .filter_map(|p| {
                let m = fs::metadata(&p).ok()?;
                Some((p, m.len(), m.modified().ok()?))
            })
            .collect();
        let mut total: u64 = sizes.iter().map(|s| s.1).sum();
        let now = SystemTime::now();
        for (p, len, modified) in sizes {
            if p.file_name().is_some_and(|n| n == "current.ndjson") {
                continue;
            }
            let old = now.duration_since(modified).unwrap_or_default() > self.retention.age;
            if total > self.retention.bytes || old {
                fs::remove_file(&p)?;
                total -= len;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use miren_core::model::{SandboxId, VersionId};
    use miren_core::runtime::Stream;

    fn rec(app: &str, service: &str, line: &str) -> LogRecord {
        LogRecord {
            time: 1,
            stream: Stream::Stdout,
            app: app.into(),
            service: service.into(),
            sandbox: SandboxId::new(app, service),
            version: VersionId::new(app),
            line: line.into(),
        }
    }

    #[tokio::test]
    async fn lines_survive_a_reopen_filter_and_stay_within_budget() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let retention = Retention {
            bytes: SEGMENT_BYTES * 2,
            age: Duration::from_secs(3600),
        };
        let store = LogStore::open(dir.path().to_path_buf(), retention)?;
        let sink = store.sink();
        sink.write(rec("shop", "web", "hello"));
        sink.write(rec("shop", "worker", "tick"));
        sink.write(rec("blog", "web", "other app"));
        let web = store
            .read(
                Filter {
                    app: Some("shop".into()),
                    service: Some("web".into()),
                    ..Filter::default()
                },
                100,
            )
            .await?;
        assert_eq!(web.len(), 1);
        assert_eq!(web[0].record.line, "hello");

        // Reopened: same lines, and numbering continues.
        let again = LogStore::open(dir.path().to_path_buf(), retention)?;
        again.sink().write(rec("shop", "web", "after restart"));
        let all = again
            .read(
                Filter {
                    app: Some("shop".into()),
                    ..Filter::default()
                },
                100,
            )
            .await?;
        let lines: Vec<_> = all.iter().map(|s| s.record.line.as_str()).collect();
        assert_eq!(lines, ["hello", "tick", "after restart"]);
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));

        // Far more than the budget: the oldest segments go.
        let big = "x".repeat(1000);
        for i in 0..(SEGMENT_BYTES * 4 / 1000) {
            again.sink().write(rec("shop", "web", &big));
            if i % 1000 == 0 {
                again.flush().await; // within the queue's budget: nothing dropped
            }
        }
        again.flush().await;
        let total: u64 = segments(&dir.path().join("shop"))
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        assert!(total <= SEGMENT_BYTES * 3, "{total} bytes kept");
        Ok(())
    }

    fn app_lines(store: &LogStore, app: &str) -> impl std::future::Future<Output = Vec<String>> {
        let store = store.clone();
        let app = app.to_string();
        async move {
            let filter = Filter {
                app: Some(app),
                ..Filter::default()
            };
            store
                .read(filter, usize::MAX)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .map(|s| s.record.line)
                .collect()
        }
    }

    #[tokio::test]
    async fn a_flood_past_the_queue_is_dropped_counted_and_said() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        // Room for ten 100-byte lines.
        let queue = 10 * (100 + RECORD_OVERHEAD);
        let store =
            LogStore::open_with_queue(dir.path().to_path_buf(), Retention::default(), queue)?;
        let sink = store.sink();
        let line = "y".repeat(100);
        let one = rec("flood", "web", &line);
        for _ in 0..1000 {
            sink.write(one.clone());
        }
        let lines = app_lines(&store, "flood").await;
        let kept = lines.iter().filter(|l| **l == line).count();
        assert_eq!(kept, 10, "what fit in the queue");
        assert_eq!(
            lines.last().map(String::as_str),
            Some("… 990 lines dropped: written faster than the server could store them")
        );
        assert_eq!(
            store.queue.pending.load(Ordering::Acquire),
            0,
            "the queue is empty again"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_deleted_app_stays_deleted_and_a_new_one_of_its_name_keeps_its_lines()
    -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = LogStore::open(dir.path().to_path_buf(), Retention::default())?;
        let sink = store.sink();
        let mut old = rec("shop", "web", "before");
        old.time = miren_core::runtime::now_millis();
        sink.write(old.clone());
        store.flush().await;
        // Lines still queued when the app goes (written before its deletion).
        for _ in 0..100 {
            sink.write(old.clone());
        }
        store.remove_app("shop").await;
        sink.write(old);
        store.flush().await;
        assert!(
            !dir.path().join("shop").exists(),
            "the backlog re-created it"
        );
        // Deployed again: its lines are written and read back without a restart.
        let mut new = rec("shop", "web", "after");
        new.time = miren_core::runtime::now_millis() + 1;
        sink.write(new);
        assert_eq!(app_lines(&store, "shop").await, ["after"]);
        Ok(())
    }
}
