//! A real HTTP/1.1 origin on a loopback ephemeral port (hyper), optionally over TLS, that
//! answers through a test-supplied function and counts what it receives.

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the origin saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// What the origin answers.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
    /// A body sent in these pieces, `gap` apart, chunked (instead of `body`).
    pub chunks: Option<(Vec<Vec<u8>>, Duration)>,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.into(),
            delay: Duration::ZERO,
            chunks: None,
        }
    }

    /// A body streamed in `pieces`, `gap` apart, without a length (chunked).
    pub fn streamed(pieces: Vec<Vec<u8>>, gap: Duration) -> Reply {
        Reply {
            chunks: Some((pieces, gap)),
            ..Reply::ok("")
        }
    }

    pub fn status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    /// Adds a header; `Content-Type` replaces the default `text/plain`.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        if name.eq_ignore_ascii_case("content-type") {
            self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        }
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

pub struct Origin {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    answering: Arc<Answering>,
    stop: watch::Sender<bool>,
}

/// Requests being answered: now, at most at once, and given up by their client before their
/// answer was sent.
#[derive(Default)]
struct Answering {
    now: AtomicUsize,
    peak: AtomicUsize,
    abandoned: AtomicUsize,
}

/// One request being answered; dropped unfinished when its client went away.
struct Answer {
    answering: Arc<Answering>,
    finished: bool,
}

impl Answer {
    fn new(answering: Arc<Answering>) -> Answer {
        let now = answering.now.fetch_add(1, Ordering::SeqCst) + 1;
        answering.peak.fetch_max(now, Ordering::SeqCst);
        Answer {
            answering,
            finished: false,
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.answering.now.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.answering.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Origin {
    pub async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
        Self::start_inner(Arc::new(handler), None).await
    }

    pub async fn start_tls(
        acceptor: tokio_rustls::TlsAcceptor,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Origin {
        Self::start_inner(Arc::new(handler), Some(acceptor)).await
    }

    async fn start_inner(handler: Handler, tls: Option<tokio_rustls::TlsAcceptor>) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let answering = Arc::new(Answering::default());
        let (stop, stopped) = watch::channel(false);
        let (requests2, connections2, answering2) = (requests.clone(), connections.clone(), answering.clone());
        tokio::spawn(async move {
            let mut stopped_accept = stopped.clone();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stopped_accept.changed() => return,
                };
                let Ok((stream, _)) = accepted else { continue };
                connections2.fetch_add(1, Ordering::SeqCst);
                let (handler, requests, tls) = (handler.clone(), requests2.clone(), tls.clone());
                let answering = answering2.clone();
                let mut stopped_conn = stopped.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (handler, requests) = (handler.clone(), requests.clone());
                        let answer = Answer::new(answering.clone());
                        async move {
                            // Moved in whole: it lives as long as the answer is being made.
                            let mut answer = answer;
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                            let seen = Seen {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            };
                            let reply = handler(&seen);
                            requests.lock().unwrap().push(seen);
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            let mut response = http::Response::builder().status(reply.status);
                            for (name, value) in &reply.headers {
                                response = response.header(name, value);
                            }
                            let body: BoxBody<Bytes, std::convert::Infallible> = match reply.chunks {
                                None => BodyExt::boxed(Full::new(Bytes::from(reply.body))),
                                Some((pieces, gap)) => {
                                    let pieces = futures::stream::iter(pieces).then(move |piece| async move {
                                        tokio::time::sleep(gap).await;
                                        Ok(hyper::body::Frame::data(Bytes::from(piece)))
                                    });
                                    BodyExt::boxed(StreamBody::new(pieces))
                                }
                            };
                            answer.finished = true;
                            Ok::<_, std::convert::Infallible>(response.body(body).unwrap())
                        }
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            tokio::select! { _ = conn => {}, _ = stopped_conn.changed() => {} }
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            tokio::select! { _ = conn => {}, _ = stopped_conn.changed() => {} }
                        }
                    }
                });
            }
        });
        Origin {
            addr,
            requests,
            connections,
            answering,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received whose path and query equal `uri`.
    pub fn count(&self, uri: &str) -> usize {
        self.requests.lock().unwrap().iter().filter(|s| s.uri == uri).count()
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }

    pub fn total(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn last(&self) -> Seen {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the origin received a request")
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The most requests it was answering at once.
    pub fn peak_concurrency(&self) -> usize {
        self.answering.peak.load(Ordering::SeqCst)
    }

    /// Requests whose client went away before their answer was sent.
    pub fn abandoned(&self) -> usize {
        self.answering.abandoned.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes open connections: the origin is gone.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Counts per URI, for origins whose handler wants to vary by call number.
#[derive(Default, Clone)]
pub struct Calls(Arc<Mutex<HashMap<String, usize>>>);

impl Calls {
    /// Records a call to `uri` and returns its number (1 for the first).
    pub fn next(&self, uri: &str) -> usize {
        let mut map = self.0.lock().unwrap();
        let n = map.entry(uri.to_string()).or_default();
        *n += 1;
        *n
    }
}
