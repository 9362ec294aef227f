//! A response body that counts its bytes into an app's request metrics as they go to
//! the client (HTTP/2: the body streams after the exchange is answered).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::table::stats::RequestStats;

/// `inner`, each data frame counted in `stats`.
pub struct Counted<B> {
    inner: B,
    stats: Arc<RequestStats>,
}

impl<B> Counted<B> {
    pub fn new(inner: B, stats: Arc<RequestStats>) -> Self {
        Self { inner, stats }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.stats.sent(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
