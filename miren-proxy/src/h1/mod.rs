//! The HTTP/1.1 path, which carries nearly all traffic: one task per client
//! connection reads a request head, routes it, writes it to a kept-alive connection to
//! the instance, reads the answer and writes it back — no header maps, no per-request
//! task or channel, heads parsed in place (httparse) and rewritten in one pass.
//! When to retry, and where, is the shared [`policy`](crate::policy); this is how
//! HTTP/1 sends. A connection that opens with the HTTP/2 preface goes to hyper instead.
//!
//! - `connection`: one client connection: reading heads, the proxy's own answers, the
//!   lingering close.
//! - `exchange`: one request: route it, send it through the policy, finish the answer.
//! - `files`: `[static]` files answered by the proxy itself, and error pages.
//! - `body`: bodies in flight, the client's to the instance and the instance's back.
//! - `request`, `response`: the two heads, parsed in place and rewritten in one pass;
//!   `head`: what they share (framing, `Connection`).
//! - `chunked`: where a chunked body ends; `deadline`: one lazily moved timer per
//!   purpose; `rewind`: the bytes read before handing a connection to hyper.

mod body;
mod chunked;
mod connection;
mod deadline;
mod exchange;
mod files;
mod head;
#[cfg(test)]
mod props;
mod request;
mod response;
mod rewind;

pub use connection::serve;

/// Read and written at a time when streaming a body.
pub const STREAM_CHUNK: usize = 64 * 1024;
/// Free buffer space asked for before reading a head.
const HEAD_READ: usize = 4 * 1024;
