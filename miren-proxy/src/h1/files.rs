//! `[static]` over HTTP/1.1: a `GET` or `HEAD` naming a file of the app's active
//! version is answered from it (with its type, length and entity tag; `304` when the
//! client has it already); anything else goes on to the web service. The proxy's own
//! errors for such an app are its error page, for clients that take HTML.

use bytes::Buf;
use miren_core::controller::statics::PageFields;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::connection::ClientIo;
use super::head::put_header;
use super::request::RequestHead;
use crate::reply::{LocalReply, reason};
use crate::statics::{Site, mime};

/// A file is written to the client in pieces this big.
const CHUNK: usize = 64 * 1024;

impl ClientIo {
    /// Answers with the file `head` names in `site`; `None` when there is none (the
    /// request goes on), else whether the connection goes on, the status and the body
    /// bytes sent.
    pub(super) async fn serve_file(
        &mut self,
        head: &RequestHead,
        site: &Site,
        whole: Option<usize>,
    ) -> Option<(bool, u16, u64)> {
        let method = &self.buf[head.method.clone()];
        if method != b"GET" && method != b"HEAD" {
            return None;
        }
        let found = site.find(&self.buf[head.target.clone()]).await?;
        let mut file = tokio::fs::File::open(&found.path).await.ok()?;
        let fresh = header(&self.buf[..head.len], "if-none-match").is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == found.etag || t.trim() == "*")
        });
        let status: u16 = if fresh { 304 } else { 200 };
        let keep = head.keep_alive && whole.is_some();
        let out = &mut self.down;
        out.clear();
        out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", status_text(status)).as_bytes());
        put_header(out, b"content-type", mime::of(&found.path).as_bytes());
        if !fresh {
            put_header(out, b"content-length", found.len.to_string().as_bytes());
        }
        put_header(out, b"etag", found.etag.as_bytes());
        put_header(out, b"cache-control", b"no-cache");
        put_header(
            out,
            crate::headers::X_REQUEST_ID.as_bytes(),
            &self.up[head.request_id.clone()],
        );
        if !keep {
            put_header(out, b"connection", b"close");
        }
        out.extend_from_slice(b"\r\n");
        if self.client.write_all(&self.down).await.is_err() {
            return Some((false, status, 0));
        }
        if !fresh && !head.is_head {
            let mut left = found.len;
            let mut chunk = vec![0u8; CHUNK.min(usize::try_from(left).unwrap_or(CHUNK)).max(1)];
            while left > 0 {
                let n = match file.read(&mut chunk).await {
                    Ok(0) | Err(_) => return Some((false, status, found.len - left)),
                    Ok(n) => n.min(usize::try_from(left).unwrap_or(n)),
                };
                if self.client.write_all(&chunk[..n]).await.is_err() {
                    return Some((false, status, found.len - left));
                }
                left -= n as u64;
            }
        }
        self.unread_input = whole.is_none();
        if let (true, Some(body)) = (keep, whole) {
            self.buf.advance(head.len + body);
        }
        let sent = if fresh || head.is_head { 0 } else { found.len };
        Some((keep, status, sent))
    }

    /// `r` as the site's error page when the client takes HTML.
    pub(super) async fn dressed(
        &self,
        head: &RequestHead,
        site: &Site,
        app: &str,
        mut r: LocalReply,
    ) -> LocalReply {
        let takes_html =
            header(&self.buf[..head.len], "accept").is_some_and(|a| a.contains("text/html"));
        if !takes_html {
            return r;
        }
        let id = String::from_utf8_lossy(&self.up[head.request_id.clone()]).into_owned();
        let fields = PageFields {
            status_code: r.status,
            status: reason(r.status),
            message: r.body.trim_end(),
            request_id: &id,
            app,
        };
        if let Some(page) = site.dress(&fields).await {
            r.body = page;
            r.html = true;
        }
        r
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        304 => "Not Modified",
        s => reason(s),
    }
}

/// The value of the header `name` in a request head, when it is there once or more
/// (joined by `,`).
fn header(head: &[u8], name: &str) -> Option<String> {
    let mut slots = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut slots);
    req.parse(head).ok()?;
    let values: Vec<String> = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}
