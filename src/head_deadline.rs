//! The time a client has to send a request head (`server.request_header_timeout`).
//!
//! pingora bounds each read of an HTTP/1 request head (by its 60 s keep-alive), not the whole
//! head: a client sending a byte every 59 s held its connection, and a task, for ever (the
//! slowloris attack). nginx bounds the whole head (`client_header_timeout`). `HeadDeadline` reads
//! each request head itself, under that bound, then hands pingora a session whose buffer already
//! holds it (pingora's `set_pipelined_prefix`, which it parses before reading). A head not
//! complete in time gets 408 and the connection is closed; a connection that sent nothing is
//! closed without an answer, as nginx does. The bound runs from the connection's accept for its
//! first request, and from the first byte for the next ones on a kept-alive connection (which
//! may idle `KEEPALIVE_IDLE` before it). HTTP/2 connections go to pingora untouched: their
//! requests are frames, read by its HTTP/2 layer.

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a kept-alive connection may wait for its next request: pingora's keep-alive timeout,
/// which it sets on every HTTP/1 session.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// pingora's limit on a request head; past it, it answers 400 at once.
const MAX_HEAD: usize = 1 << 20;

/// The answer to a head that did not arrive in time.
const TIMED_OUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 48\r\nCache-Control: no-store\r\nX-Cache: Error from edgehook\r\nConnection: close\r\n\r\n408 Request Timeout\nthe request head was late\n";

/// The current bound on a request head (read at each request: a reload may change it).
pub type HeadTimeout = Arc<dyn Fn() -> Duration + Send + Sync>;

/// An HTTP app whose HTTP/1 request heads must arrive within a bound.
pub struct HeadDeadline<A> {
    app: Arc<A>,
    timeout: HeadTimeout,
    /// Set when the app cleans up (the listeners closed): connections waiting for a head close.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl<A> HeadDeadline<A> {
    pub fn new(app: A, timeout: HeadTimeout) -> Self {
        HeadDeadline {
            app: Arc::new(app),
            timeout,
            stopping: tokio::sync::watch::channel(false).0,
        }
    }
}

/// How reading a head ended.
#[derive(Debug, PartialEq, Eq)]
enum HeadRead {
    /// The buffer holds a whole head (perhaps with body bytes after it), or more than pingora
    /// takes (it answers 400).
    Complete,
    /// The client closed, or the connection failed, or stayed idle: close without an answer.
    Gone,
    /// Part of a head came, not all of it in time: answer 408.
    Late,
}

/// Where the head in `buf` ends (the index after its blank line), as pingora's parser (httparse)
/// decides: empty lines before the request line are skipped, and every line may end with LF or
/// CRLF. None while the blank line has not come.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    for found in memchr::memchr_iter(b'\n', &buf[start..]) {
        let line_end = start + found + 1;
        match buf.get(line_end..) {
            Some([b'\n', ..]) => return Some(line_end + 1),
            Some([b'\r', b'\n', ..]) => return Some(line_end + 2),
            _ => {}
        }
    }
    None
}

/// Reads from `stream` into `buf` until it holds a whole head. Waits up to `idle` for a first
/// byte (when given), then `timeout` from then; gives up when the app stops.
async fn read_head(
    stream: &mut Stream,
    buf: &mut BytesMut,
    idle: Option<Duration>,
    timeout: Duration,
    stopping: &mut tokio::sync::watch::Receiver<bool>,
) -> HeadRead {
    let read = async {
        let mut deadline = Instant::now() + idle.unwrap_or(timeout);
        let mut waiting_for_first_byte = idle.is_some();
        loop {
            // pingora's timer, made only if the read has to wait.
            let left = deadline.saturating_duration_since(Instant::now());
            match pingora_timeout::timeout(left, stream.read_buf(buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return HeadRead::Gone,
                Ok(Ok(_)) => {
                    if head_end(buf).is_some() || buf.len() > MAX_HEAD {
                        return HeadRead::Complete;
                    }
                    if waiting_for_first_byte {
                        waiting_for_first_byte = false;
                        deadline = Instant::now() + timeout;
                    }
                }
                Err(_elapsed) if buf.is_empty() => return HeadRead::Gone,
                Err(_elapsed) => return HeadRead::Late,
            }
        }
    };
    tokio::select! {
        biased;
        read = read => read,
        _ = stopping.wait_for(|stopping| *stopping) => HeadRead::Gone,
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for HeadDeadline<A> {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let options = self.app.server_options();
        let plain_h1 = matches!(stream.selected_alpn_proto(), None | Some(ALPN::H1))
            && !options.is_some_and(|o| o.h2c || o.force_custom);
        if !plain_h1 {
            return self.app.process_new(stream, shutdown).await;
        }
        let mut stopping = self.stopping.subscribe();
        let mut stream = stream;
        let mut first = true;
        let mut settings: Option<HttpPersistentSettings> = None;
        loop {
            let mut head = BytesMut::with_capacity(4096);
            // The first request's bound runs from the accept; later ones may idle first.
            let idle = (!first).then_some(KEEPALIVE_IDLE);
            match read_head(&mut stream, &mut head, idle, (self.timeout)(), &mut stopping).await {
                HeadRead::Complete => {}
                HeadRead::Gone => return None,
                HeadRead::Late => {
                    tracing::debug!("a request head was late: 408");
                    let _ = stream.write_all(TIMED_OUT).await;
                    let _ = stream.flush().await;
                    let _ = stream.shutdown().await;
                    return None;
                }
            }
            let mut session = ServerSession::new_http1(stream);
            // As pingora's own HTTP/1 loop sets them up.
            match settings.take() {
                Some(settings) => settings.apply_to_session(&mut session),
                None => {
                    session.set_keepalive(Some(KEEPALIVE_IDLE.as_secs()));
                    session.set_keepalive_reuses_remaining(options.and_then(|o| o.keepalive_request_limit));
                }
            }
            if *shutdown.borrow() {
                session.set_keepalive(None);
            }
            // pingora sets a prefix of its own only with pipelining, which edgehook leaves off.
            session.set_pipelined_prefix(head);
            (stream, settings) = self.app.process_new_http(session, shutdown).await?.consume();
            first = false;
        }
    }

    async fn cleanup(&self) {
        self.stopping.send_replace(true);
        self.app.http_cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::head_end;

    #[test]
    fn a_head_ends_at_its_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: a\n\n"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\n\r\n"), Some(26));
        assert_eq!(
            head_end(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
            Some(22),
            "leading empty lines are skipped"
        );
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r"), None);
        assert_eq!(head_end(b"\r\n\r\n"), None);
        assert_eq!(head_end(b""), None);
    }
}

#[cfg(test)]
mod properties {
    use super::head_end;
    use proptest::prelude::*;

    /// Request heads as clients write them (either line ending, empty lines first, headers of
    /// any text), then bytes of a body, and bytes of anything.
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        let line_end = prop_oneof![Just(&b"\r\n"[..]), Just(&b"\n"[..])];
        let head = (
            proptest::collection::vec(line_end.clone(), 0..3),
            prop::sample::select(vec!["GET / HTTP/1.1", "POST /a?b=1 HTTP/1.0", "GET http://x/ HTTP/1.1"]),
            proptest::collection::vec(("[A-Za-z-]{1,8}", "[ -~]{0,10}", line_end.clone()), 0..6),
            line_end.clone(),
            line_end,
            proptest::collection::vec(any::<u8>(), 0..8),
        )
            .prop_map(|(empty, start, headers, first_end, blank, body)| {
                let mut out: Vec<u8> = empty.concat();
                out.extend_from_slice(start.as_bytes());
                out.extend_from_slice(first_end);
                for (name, value, end) in headers {
                    out.extend_from_slice(format!("{name}: {value}").as_bytes());
                    out.extend_from_slice(end);
                }
                out.extend_from_slice(blank);
                out.extend(body);
                out
            });
        let noise = proptest::collection::vec(
            prop_oneof![
                Just(b'\r'),
                Just(b'\n'),
                Just(b' '),
                Just(b':'),
                Just(b'/'),
                Just(b'a'),
                any::<u8>()
            ],
            0..40,
        );
        prop_oneof![3 => head, 1 => noise]
    }

    proptest! {
        /// A head is whole where pingora's parser finds it whole, and not before: edgehook never
        /// hands pingora a head it would go on reading without the deadline.
        #[test]
        fn a_head_ends_where_httparse_finds_its_end(bytes in bytes(), cut in any::<prop::sample::Index>()) {
            let prefix = &bytes[..cut.index(bytes.len() + 1)];
            let mut headers = [httparse::EMPTY_HEADER; 256];
            let mut request = httparse::Request::new(&mut headers);
            match request.parse(prefix) {
                Ok(httparse::Status::Complete(end)) => prop_assert_eq!(head_end(prefix), Some(end)),
                Ok(httparse::Status::Partial) => prop_assert_eq!(head_end(prefix), None),
                // pingora answers 400 (or escapes the target and reads on) once it has the head.
                Err(_) => {}
            }
        }
    }
}
