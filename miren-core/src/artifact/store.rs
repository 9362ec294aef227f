//! Archives on disk, one file per digest, written so that a file under a digest's name
//! always has that digest: each upload streams to a temporary file of its own, is
//! hashed as it arrives and again from disk, and is renamed into place only then.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::model::{Digest, DigestHasher};
use crate::runtime::Artifact;

/// How long an uploaded archive no version uses yet is kept: the time a client may
/// take between uploading and deploying it.
pub const PENDING_FOR: Duration = Duration::from_secs(60 * 60);

const UPLOAD_PREFIX: &str = ".upload-";

/// Why storing or collecting archives failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// The file system failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The content that arrived is not what the client sent.
    #[error(
        "the upload arrived with the digest {actual}, not the {expected} it was sent with: it changed on the way; upload it again"
    )]
    Mismatch {
        /// What the client said it sent.
        expected: Digest,
        /// What arrived.
        actual: Digest,
    },
    /// The temporary file changed between being written and being stored.
    #[error(
        "the upload changed on disk before it was stored ({path}): something else writes to the artifact store"
    )]
    Changed {
        /// The temporary file.
        path: PathBuf,
    },
}

impl ArtifactError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        ArtifactError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<ArtifactError> for io::Error {
    fn from(e: ArtifactError) -> Self {
        match e {
            ArtifactError::Io { source, .. } => source,
            other => io::Error::other(other),
        }
    }
}

/// What a collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Archives removed.
    pub files: usize,
    /// Their size.
    pub bytes: u64,
}

/// Archives on disk, one file per digest. Cheap to clone; clones share what was
/// uploaded recently.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
    /// Uploads no version has used yet, by when they arrived; kept by collections
    /// until a version uses them or [`PENDING_FOR`] passes. Also the lock that makes
    /// storing an upload and collecting exclusive.
    pending: Arc<Mutex<HashMap<Digest, Instant>>>,
    next: Arc<AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ArtifactStore {
    /// A store in `root` (created when missing). Uploads an earlier server left
    /// half-written are removed: only one server opens a data dir.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        for entry in fs::read_dir(&root)? {
            let entry = entry?;
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(UPLOAD_PREFIX)
            {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(Self {
            root,
            pending: Arc::default(),
            next: Arc::default(),
        })
    }

    /// Starts an upload: a temporary file of its own, hashed as it is written.
    pub fn upload(&self) -> Result<Upload, ArtifactError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join(format!("{UPLOAD_PREFIX}{}-{n}", std::process::id()));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| ArtifactError::io(format!("creating {}", tmp.display()), e))?;
        Ok(Upload {
            store: self.clone(),
            file: Some(BufWriter::with_capacity(1 << 16, file)),
            tmp,
            hasher: DigestHasher::default(),
            bytes: 0,
        })
    }

    /// Keeps `bytes` (once: the same content is stored once) and returns its artifact.
    pub fn put(&self, bytes: &[u8]) -> Result<Artifact, ArtifactError> {
        let mut up = self.upload()?;
        up.write(bytes)?;
        up.finish(None)
    }

    /// The stored artifact with `digest`, if any. Stats a file: call it off the
    /// async threads, or use [`artifact`](Self::artifact) where the file is checked later.
    pub fn get(&self, digest: &Digest) -> Option<Artifact> {
        let a = self.artifact(digest);
        a.path.is_file().then_some(a)
    }

    /// Where the artifact with `digest` is (or would be), without looking.
    pub fn artifact(&self, digest: &Digest) -> Artifact {
        Artifact {
            digest: digest.clone(),
            path: self.path_of(digest),
        }
    }

    /// Removes every archive but those in `keep` and recent uploads no version uses
    /// yet. Blocking: call it off the async threads.
    pub fn retain(&self, keep: &BTreeSet<Digest>) -> Result<Collected, ArtifactError> {
        let mut pending = lock(&self.pending);
        pending.retain(|d, at| !keep.contains(d) && at.elapsed() < PENDING_FOR);
        let mut collected = Collected::default();
        let entries = fs::read_dir(&self.root)
            .map_err(|e| ArtifactError::io(format!("listing {}", self.root.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ArtifactError::io("listing artifacts", e))?;
            let name = entry.file_name();
            let Some(digest) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".tar"))
                .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
            else {
                continue; // an upload in progress, or not ours
            };
            if keep.contains(&digest) || pending.contains_key(&digest) {
                continue;
            }
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    collected.files += 1;
                    collected.bytes += bytes;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ArtifactError::io(
                        format!("removing {}", entry.path().display()),
                        e,
                    ));
                }
            }
        }
        Ok(collected)
    }

    fn path_of(&self, digest: &Digest) -> PathBuf {
        self.root.join(format!("{}.tar", digest.hex()))
    }
}

/// An archive being uploaded, written to a temporary file of its own (removed when
/// the upload is dropped unfinished).
#[derive(Debug)]
pub struct Upload {
    store: ArtifactStore,
    file: Option<BufWriter<fs::File>>,
    tmp: PathBuf,
    hasher: DigestHasher,
    bytes: u64,
}

impl Upload {
    /// Appends the next piece.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), ArtifactError> {
        let Some(file) = self.file.as_mut() else {
            return Err(ArtifactError::io(
                "writing the upload",
                io::Error::other("already finished"),
            ));
        };
        file.write_all(chunk)
            .map_err(|e| ArtifactError::io(format!("writing {}", self.tmp.display()), e))?;
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        Ok(())
    }

    /// How many bytes were written so far.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Stores the upload under its digest, which must be `expected` when the client
    /// said what it sent. The file is hashed again from disk before it is renamed into
    /// place; a file already stored under the digest is kept only when its content
    /// still has it.
    pub fn finish(mut self, expected: Option<&Digest>) -> Result<Artifact, ArtifactError> {
        let tmp = self.tmp.clone();
        let ctx = |what: &str| format!("{what} {}", tmp.display());
        if let Some(file) = self.file.take() {
            let file = file
                .into_inner()
                .map_err(|e| ArtifactError::io(ctx("writing"), e.into_error()))?;
            file.sync_all()
                .map_err(|e| ArtifactError::io(ctx("syncing"), e))?;
        }
        let digest = std::mem::take(&mut self.hasher).finish();
        if let Some(expected) = expected.filter(|e| **e != digest) {
            return Err(ArtifactError::Mismatch {
                expected: expected.clone(),
                actual: digest,
            });
        }
        if hash_file(&tmp).map_err(|e| ArtifactError::io(ctx("reading"), e))? != digest {
            return Err(ArtifactError::Changed { path: tmp });
        }
        let art = self.store.artifact(&digest);
        let mut pending = lock(&self.store.pending);
        let intact = hash_file(&art.path).ok().as_ref() == Some(&digest);
        if intact {
            let _ = fs::remove_file(&tmp);
        } else {
            if art.path.exists() {
                tracing::warn!(
                    "the stored {} did not have its digest: replaced by this upload",
                    art.path.display()
                );
            }
            fs::rename(&tmp, &art.path)
                .map_err(|e| ArtifactError::io(format!("storing {}", art.path.display()), e))?;
        }
        pending.insert(digest, Instant::now());
        Ok(art)
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Finished: renamed or removed already; otherwise abandoned.
        self.file.take();
        let _ = fs::remove_file(&self.tmp);
    }
}

fn hash_file(path: &Path) -> io::Result<Digest> {
    let mut f = fs::File::open(path)?;
    let mut h = DigestHasher::default();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ArtifactStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = ArtifactStore::open(dir.path()).expect("open");
        (dir, s)
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn concurrent_uploads_of_different_content_each_keep_their_own() {
        let (dir, s) = store();
        let contents: Vec<Vec<u8>> = (0..4u8)
            .map(|i| (0..3_000_000u32).map(|j| (j as u8) ^ i).collect())
            .collect();
        let mut ups: Vec<Upload> = (0..4).map(|_| s.upload().expect("upload")).collect();
        // Interleaved, as four clients streaming at once.
        for piece in 0..30 {
            for (up, c) in ups.iter_mut().zip(&contents) {
                up.write(&c[piece * 100_000..(piece + 1) * 100_000])
                    .expect("write");
            }
        }
        let arts: Vec<Artifact> = ups
            .into_iter()
            .zip(&contents)
            .map(|(up, c)| up.finish(Some(&Digest::of(c))).expect("finish"))
            .collect();
        for (art, c) in arts.iter().zip(&contents) {
            assert_eq!(fs::read(&art.path).expect("read"), *c, "{}", art.digest);
        }
        assert_eq!(files(dir.path()).len(), 4, "{:?}", files(dir.path()));
    }

    #[test]
    fn threads_uploading_at_once_never_mix_content() {
        let (_dir, s) = store();
        let handles: Vec<_> = (0..4u8)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let c: Vec<u8> = vec![i; 2_000_000];
                    let art = s.put(&c).expect("put");
                    (art, c)
                })
            })
            .collect();
        for h in handles {
            let (art, c) = h.join().expect("thread");
            assert_eq!(fs::read(&art.path).expect("read"), c);
            assert_eq!(art.digest, Digest::of(&c));
        }
    }

    #[test]
    fn content_that_is_not_what_was_sent_is_refused_and_leaves_nothing() {
        let (dir, s) = store();
        let mut up = s.upload().expect("upload");
        up.write(b"what arrived").expect("write");
        let err = up
            .finish(Some(&Digest::of(b"what was sent")))
            .expect_err("mismatch");
        assert!(matches!(err, ArtifactError::Mismatch { .. }), "{err}");
        assert!(err.to_string().contains("upload it again"), "{err}");
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    #[test]
    fn a_stored_file_without_its_digest_is_replaced_by_the_next_upload() {
        let (_dir, s) = store();
        let art = s.put(b"the code").expect("put");
        fs::write(&art.path, b"another app's code").expect("corrupt");
        let again = s.put(b"the code").expect("put again");
        assert_eq!(again.path, art.path);
        assert_eq!(fs::read(&art.path).expect("read"), b"the code");
    }

    #[test]
    fn abandoned_and_leftover_uploads_are_removed() {
        let (dir, s) = store();
        let mut up = s.upload().expect("upload");
        up.write(b"half").expect("write");
        drop(up);
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
        // What a server killed mid-upload leaves.
        fs::write(dir.path().join(".upload-123-0"), b"half").expect("write");
        let art = s.put(b"kept").expect("put");
        ArtifactStore::open(dir.path()).expect("reopen");
        assert_eq!(files(dir.path()), vec![format!("{}.tar", art.digest.hex())]);
    }

    #[test]
    fn retain_keeps_what_is_used_and_recent_uploads_until_used() {
        let (dir, s) = store();
        let used = s.put(b"used").expect("put");
        let old = s.put(b"old").expect("put");
        let fresh = s.put(b"fresh").expect("put");
        // `old` was used by a version and no longer is; `fresh` was never used.
        let keep = BTreeSet::from([used.digest.clone(), old.digest.clone()]);
        assert_eq!(s.retain(&keep).expect("retain").files, 0);
        let keep = BTreeSet::from([used.digest.clone()]);
        let c = s.retain(&keep).expect("retain");
        assert_eq!(c.files, 1);
        assert!(!old.path.exists());
        assert!(
            fresh.path.exists(),
            "an upload waiting for its deploy stays"
        );
        assert!(used.path.exists());
        // Once a version used it and stopped using it, it goes.
        s.retain(&BTreeSet::from([fresh.digest.clone()]))
            .expect("retain");
        s.retain(&BTreeSet::new()).expect("retain");
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }
}
