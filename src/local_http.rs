//! A minimal HTTP/1 application frame for edgehook's own listeners (the admin API and the
//! internal socket that serves directory origins): read one request, let a `Handler` answer,
//! write the answer (streaming files in chunks), keep the connection alive.

use async_trait::async_trait;
use bytes::Bytes;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

const FILE_CHUNK: usize = 64 << 10;

pub enum Body {
    Empty,
    Bytes(Bytes),
    /// A file of known length, streamed.
    File(tokio::fs::File),
    /// Chunks from elsewhere (an origin), streamed.
    Stream(Box<dyn BodyStream>),
}

/// A body produced chunk by chunk.
#[async_trait]
pub trait BodyStream: Send + Sync {
    /// The next chunk; None at the end.
    async fn next_chunk(&mut self) -> pingora::Result<Option<Bytes>>;
    /// Called once the body has been written (e.g. to return a connection to its pool).
    async fn finish(self: Box<Self>);
}

pub struct Reply {
    pub header: ResponseHeader,
    pub body: Body,
}

impl Reply {
    /// A reply with a small in-memory body and its Content-Type.
    pub fn bytes(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
        let body: Bytes = body.into();
        let mut header = ResponseHeader::build(status, Some(3)).expect("status codes used here are valid");
        // Static names and values built from valid strings cannot fail to insert.
        let _ = header.insert_header(http::header::CONTENT_TYPE, content_type);
        let _ = header.insert_header(http::header::CONTENT_LENGTH, body.len());
        Reply {
            header,
            body: Body::Bytes(body),
        }
    }

    /// A plain-text reply (a trailing newline is added).
    pub fn text(status: u16, text: &str) -> Reply {
        Reply::bytes(status, "text/plain; charset=utf-8", format!("{text}\n"))
    }
}

#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, session: &mut ServerSession) -> Reply;
}

/// Adapts a `Handler` to pingora's `HttpServerApp`.
pub struct LocalApp<H>(pub H);

#[async_trait]
impl<H: Handler> HttpServerApp for LocalApp<H> {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match session.read_request().await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                tracing::debug!(error = %e, "local listener: unreadable request");
                let _ = session.respond_error(400).await;
                return None;
            }
        }
        session.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
        let reply = self.0.handle(&mut session).await;
        let head = session.req_header().method == http::Method::HEAD;
        if let Err(e) = write_reply(&mut session, reply, head).await {
            tracing::debug!(error = %e, "local listener: failed to write the reply");
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(stream) => stream.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(_) => None,
        }
    }
}

async fn write_reply(session: &mut ServerSession, reply: Reply, head: bool) -> pingora::Result<()> {
    session.write_response_header(Box::new(reply.header)).await?;
    if head {
        return session.finish_body().await;
    }
    match reply.body {
        Body::Empty => session.finish_body().await,
        Body::Bytes(bytes) => session.write_response_body(bytes, true).await,
        Body::Stream(mut stream) => {
            while let Some(chunk) = stream.next_chunk().await? {
                session.write_response_body(chunk, false).await?;
            }
            stream.finish().await;
            session.finish_body().await
        }
        Body::File(mut file) => {
            loop {
                let mut chunk = vec![0u8; FILE_CHUNK];
                let read = file
                    .read(&mut chunk)
                    .await
                    .map_err(|e| pingora::Error::because(pingora::ErrorType::ReadError, "reading file", e))?;
                if read == 0 {
                    break;
                }
                chunk.truncate(read);
                session.write_response_body(Bytes::from(chunk), false).await?;
            }
            session.finish_body().await
        }
    }
}
