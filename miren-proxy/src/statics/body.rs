//! A file as a response body for hyper (HTTP/2), read as it is sent.

/// A file as a response body, read as it is sent (HTTP/2).
pub struct FileBody {
    file: tokio::fs::File,
    left: u64,
    buf: Vec<u8>,
}

impl FileBody {
    /// The first `len` bytes of `file`.
    pub fn new(file: tokio::fs::File, len: u64) -> Self {
        Self {
            file,
            left: len,
            buf: vec![0; 64 * 1024],
        }
    }
}

/// A read error ends the body early: the client, told the length, sees it short.
impl hyper::body::Body for FileBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let me = self.get_mut();
        if me.left == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(me.left).map_or(me.buf.len(), |l| l.min(me.buf.len()));
        let mut rb = tokio::io::ReadBuf::new(&mut me.buf[..want]);
        match tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut me.file), cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => {
                tracing::warn!("reading a static file: {e}");
                me.left = 0;
                Poll::Ready(None)
            }
            Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                tracing::warn!("a static file got shorter while it was sent");
                me.left = 0;
                Poll::Ready(None)
            }
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                me.left -= n as u64;
                let chunk = bytes::Bytes::copy_from_slice(rb.filled());
                Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
            }
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left)
    }
}
