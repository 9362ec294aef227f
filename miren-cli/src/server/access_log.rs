//! The server's access log: one line per proxied request, on by default, at a cost
//! that doesn't show. A `tracing` layer for the proxy's access events (target
//! `miren::access`, so `RUST_LOG` still turns them off) that formats each line into a
//! buffer of the thread that served the request, under a lock only that thread and the
//! writer ever take. A buffer goes to the writer thread when it holds a few KiB, and the
//! writer collects whatever is left every [`FLUSH_EVERY`]: one write per batch of whole
//! lines, no wake-up per request, and a request never waits on stderr.
//!
//! tracing's own formatter and non-blocking writer cost ~2 µs per request here (an
//! eighth of the proxy's CPU per request in `benches/proxy`): escaping each character,
//! a calendar conversion per line and a cross-thread wake-up per line.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// How long a line may wait in a quiet thread's buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A buffer this full goes to the writer at once (under `PIPE_BUF`: a write to a pipe
/// of this size is never split, so lines stay whole next to other writers).
const CHUNK: usize = 3584;

type Buffer = Arc<Mutex<Vec<u8>>>;

/// The layer.
pub struct AccessLog {
    shared: Arc<Shared>,
}

struct Shared {
    /// Every thread's buffer, for the writer's rounds; a thread's goes when the
    /// thread has ended and its lines are out.
    buffers: Mutex<Vec<Buffer>>,
    to_writer: Mutex<mpsc::Sender<Msg>>,
    ansi: bool,
}

enum Msg {
    Lines(Vec<u8>),
    Stop,
}

/// Writes out what is buffered and stops the writer when dropped.
pub struct Guard {
    to_writer: mpsc::Sender<Msg>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.to_writer.send(Msg::Stop);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl AccessLog {
    /// A layer writing to `sink` from a thread of its own (`ansi`: INFO in colour, as
    /// the rest of the log on a terminal).
    pub fn new(sink: Box<dyn Write + Send>, ansi: bool) -> std::io::Result<(Self, Guard)> {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            buffers: Mutex::new(Vec::new()),
            to_writer: Mutex::new(tx.clone()),
            ansi,
        });
        let weak = Arc::downgrade(&shared);
        let writer = std::thread::Builder::new()
            .name("miren-access-log".into())
            .spawn(move || write_out(rx, weak, sink))?;
        let guard = Guard {
            to_writer: tx,
            writer: Some(writer),
        };
        Ok((Self { shared }, guard))
    }

    /// This thread's buffer, made and registered on its first line.
    fn buffer(&self) -> Buffer {
        thread_local! {
            static MINE: RefCell<Option<(usize, Buffer)>> = const { RefCell::new(None) };
        }
        let id = Arc::as_ptr(&self.shared) as usize;
        MINE.with(|m| {
            let mut m = m.borrow_mut();
            if let Some((owner, b)) = &*m
                && *owner == id
            {
                return b.clone();
            }
            let b: Buffer = Arc::new(Mutex::new(Vec::with_capacity(CHUNK + 512)));
            let mut all = self
                .shared
                .buffers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            all.push(b.clone());
            *m = Some((id, b.clone()));
            b
        })
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AccessLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let buffer = self.buffer();
        let mut buf = buffer.lock().unwrap_or_else(|e| e.into_inner());
        timestamp(&mut buf, SystemTime::now());
        buf.extend_from_slice(if self.shared.ansi {
            b"  \x1b[32mINFO\x1b[0m "
        } else {
            b"  INFO "
        });
        event.record(&mut Message(&mut buf));
        buf.push(b'\n');
        if buf.len() >= CHUNK {
            let lines = std::mem::replace(&mut *buf, Vec::with_capacity(CHUNK + 512));
            drop(buf);
            let tx = self
                .shared
                .to_writer
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let _ = tx.send(Msg::Lines(lines));
        }
    }
}

/// The event's message, as written.
struct Message<'a>(&'a mut Vec<u8>);

impl Visit for Message<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(Bytes(self.0), "{value:?}");
        }
    }
}

/// `fmt::Write` into bytes.
struct Bytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The writer thread: full buffers as they come, the rest every `FLUSH_EVERY`, all of
/// it at the end.
fn write_out(rx: mpsc::Receiver<Msg>, shared: Weak<Shared>, mut sink: Box<dyn Write + Send>) {
    let mut write = |lines: &[u8]| {
        if !lines.is_empty() {
            let _ = sink.write_all(lines).and_then(|()| sink.flush());
        }
    };
    let collect = |write: &mut dyn FnMut(&[u8])| {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let taken: Vec<Vec<u8>> = {
            let mut all = shared.buffers.lock().unwrap_or_else(|e| e.into_inner());
            let taken = all
                .iter()
                .map(|b| std::mem::take(&mut *b.lock().unwrap_or_else(|e| e.into_inner())))
                .collect();
            // Nobody else holds it: its thread has ended (and registers no more).
            all.retain(|b| Arc::strong_count(b) > 1);
            taken
        };
        for lines in taken {
            write(&lines);
        }
    };
    loop {
        match rx.recv_timeout(FLUSH_EVERY) {
            Ok(Msg::Lines(lines)) => write(&lines),
            Err(mpsc::RecvTimeoutError::Timeout) => collect(&mut write),
            Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                // What was sent before the stop, then what is still buffered.
                while let Ok(Msg::Lines(lines)) = rx.try_recv() {
                    write(&lines);
                }
                collect(&mut write);
                return;
            }
        }
    }
}

/// `2026-12-08T00:56:19.707174Z`, as tracing's formatter writes it; the calendar part
/// is worked out once a second per thread.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with(|s| {
        let mut s = s.borrow_mut();
        if s.0 != secs {
            let (y, m, d) = miren_core::config::calendar::civil_from_days((secs / 86_400) as i64);
            let t = secs % 86_400;
            s.1.clear();
            let _ = write!(
                s.1,
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
                t / 3600,
                t / 60 % 60,
                t % 60
            );
            s.0 = secs;
        }
        out.extend_from_slice(s.1.as_bytes());
    });
    let _ = write!(Bytes(out), ".{:06}Z", since.subsec_micros());
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[test]
    fn timestamps_are_written_as_tracing_writes_them() {
        let at = |secs: u64, micros: u64| {
            let mut out = Vec::new();
            timestamp(
                &mut out,
                UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros),
            );
            String::from_utf8(out).unwrap_or_default()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        // A leap day, the end of a century year that is a leap year, and today.
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(978_307_199, 999_999), "2000-12-31T23:59:59.999999Z");
        assert_eq!(at(1_796_691_379, 707_174), "2026-12-08T00:56:19.707174Z");
        // The cached second is not reused for another.
        assert_eq!(at(1_796_691_380, 0), "2026-12-08T00:56:20.000000Z");
    }

    /// A sink the test reads.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    #[test]
    fn every_line_arrives_whole_in_each_threads_order_and_a_quiet_one_within_the_flush_time() {
        let sink = Sink::default();
        let (layer, guard) =
            AccessLog::new(Box::new(sink.clone()), false).unwrap_or_else(|e| panic!("{e}"));
        let subscriber = tracing_subscriber::registry().with(layer);
        let dispatch = tracing::Dispatch::new(subscriber);
        // Two busy threads, each past many chunks.
        std::thread::scope(|s| {
            for t in 0..2 {
                let dispatch = dispatch.clone();
                s.spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        for i in 0..5000 {
                            tracing::info!(target: "miren::access", "app sb-{t} GET /{i} 200 0.{t}ms");
                        }
                    })
                });
            }
        });
        // One quiet line: out within the flush time, not held for a full chunk.
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!(target: "miren::access", "quiet sb GET / 204 1.0ms");
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !sink
            .lines()
            .iter()
            .any(|l| l.ends_with("quiet sb GET / 204 1.0ms"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the quiet line was written"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(guard);
        let lines = sink.lines();
        assert_eq!(lines.len(), 10_001);
        for t in 0..2 {
            let mine: Vec<&String> = lines
                .iter()
                .filter(|l| l.contains(&format!(" sb-{t} ")))
                .collect();
            assert_eq!(mine.len(), 5000);
            for (i, l) in mine.iter().enumerate() {
                let (stamp, rest) = l.split_at(27);
                assert!(stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T', "{l}");
                assert_eq!(rest, format!("  INFO app sb-{t} GET /{i} 200 0.{t}ms"));
            }
        }
    }
}
