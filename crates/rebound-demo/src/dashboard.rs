//! The live dashboard: one self-contained page (HTML, JS and SVG, no CDN)
//! served on 127.0.0.1, fed by server-sent events — a `meta` event (the
//! phases), a `sample` event per interval, a `done` event with the summary.

use std::convert::Infallible;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::sample::Sample;
use crate::summary::Summary;

/// The page, embedded in the binary.
pub const INDEX_HTML: &str = include_str!("dashboard.html");

#[derive(Debug, Clone)]
enum Msg {
    Sample(Arc<str>),
    Done(Arc<str>),
}

impl Msg {
    fn event(&self) -> Event {
        match self {
            Msg::Sample(s) => Event::default().event("sample").data(&**s),
            Msg::Done(s) => Event::default().event("done").data(&**s),
        }
    }
}

#[derive(Default)]
struct Log {
    samples: Vec<Msg>,
    done: Option<Msg>,
}

/// Where the run posts its samples, and the dashboard reads them.
pub(crate) struct Hub {
    meta: Arc<str>,
    log: Mutex<Log>,
    tx: broadcast::Sender<Msg>,
}

impl Hub {
    pub(crate) fn new(meta: serde_json::Value) -> Hub {
        Hub {
            meta: Arc::from(meta.to_string()),
            log: Mutex::new(Log::default()),
            tx: broadcast::channel(256).0,
        }
    }

    pub(crate) fn push(&self, sample: Sample) {
        let msg = Msg::Sample(Arc::from(
            serde_json::to_string(&sample).unwrap_or_default(),
        ));
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .samples
            .push(msg.clone());
        let _ = self.tx.send(msg);
    }

    pub(crate) fn finish(&self, summary: &Summary) {
        let body = serde_json::json!({ "summary": summary, "facts": summary.facts() });
        let msg = Msg::Done(Arc::from(body.to_string()));
        self.log.lock().unwrap_or_else(|p| p.into_inner()).done = Some(msg.clone());
        let _ = self.tx.send(msg);
    }

    fn events(&self) -> impl Stream<Item = Result<Event, Infallible>> + use<> {
        // Subscribe before reading the log: a sample may then come twice
        // (the page keeps one per number), never not at all.
        let rx = self.tx.subscribe();
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let mut head = vec![Event::default().event("meta").data(&*self.meta)];
        head.extend(log.samples.iter().map(Msg::event));
        head.extend(log.done.iter().map(Msg::event));
        drop(log);
        let live = stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(m) => return Some((m.event(), rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        stream::iter(head).chain(live).map(Ok)
    }
}

async fn index() -> impl IntoResponse {
    Html(INDEX_HTML)
}

async fn events(State(hub): State<Arc<Hub>>) -> impl IntoResponse {
    Sse::new(hub.events()).keep_alive(KeepAlive::default())
}

async fn meta(State(hub): State<Arc<Hub>>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        hub.meta.to_string(),
    )
}

/// Serves the dashboard on `addr`; returns the address it is bound to.
pub(crate) async fn serve(
    addr: SocketAddr,
    hub: Arc<Hub>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let router = Router::new()
        .route("/", get(index))
        .route("/events", get(events))
        .route("/api/meta", get(meta))
        .with_state(hub);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).into_future().await;
    });
    Ok((addr, task))
}
