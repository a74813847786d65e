//! The bodies the proxy answers with: the upstream's, streamed as it
//! arrives; a short text of its own; or the upstream's trickled.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use rebound::Clock;

pin_project! {
    /// A response body.
    #[project = Projected]
    pub(crate) enum ProxyBody {
        /// The upstream's body, frame by frame.
        Upstream { #[pin] body: Incoming },
        /// A body made by the proxy.
        Full { data: Option<Bytes> },
        /// The upstream's body, a few bytes at a time.
        Trickle { #[pin] body: Trickle },
    }
}

impl ProxyBody {
    pub(crate) fn text(text: String) -> Self {
        ProxyBody::Full {
            data: Some(Bytes::from(text)),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.project() {
            Projected::Upstream { body } => body.poll_frame(cx),
            Projected::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Projected::Trickle { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { body } => body.is_end_stream(),
            ProxyBody::Full { data } => data.is_none(),
            ProxyBody::Trickle { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body } => body.size_hint(),
            ProxyBody::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ProxyBody::Trickle { body } => body.size_hint(),
        }
    }
}

type Pause = Pin<Box<dyn Future<Output = ()> + Send>>;

pin_project! {
    /// The upstream's body passed on `chunk` bytes at a time, `interval`
    /// apart on the proxy's clock; it holds at most one upstream frame.
    pub(crate) struct Trickle {
        #[pin]
        body: Incoming,
        pending: Bytes,
        chunk: usize,
        interval: Duration,
        clock: Clock,
        pause: Option<Pause>,
        wait: bool,
    }
}

impl Trickle {
    pub(crate) fn new(body: Incoming, chunk: usize, interval: Duration, clock: Clock) -> Self {
        Trickle {
            body,
            pending: Bytes::new(),
            chunk: chunk.max(1),
            interval,
            clock,
            pause: None,
            wait: false,
        }
    }
}

impl Body for Trickle {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        loop {
            if let Some(pause) = this.pause.as_mut() {
                ready!(pause.as_mut().poll(cx));
                *this.pause = None;
            }
            if this.pending.has_remaining() {
                if *this.wait {
                    // Every piece after the first waits its interval.
                    *this.wait = false;
                    let clock = this.clock.clone();
                    let interval = *this.interval;
                    *this.pause = Some(Box::pin(async move { clock.timer_after(interval).await }));
                    continue;
                }
                let n = (*this.chunk).min(this.pending.len());
                *this.wait = true;
                return Poll::Ready(Some(Ok(Frame::data(this.pending.split_to(n)))));
            }
            match ready!(this.body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => *this.pending = data,
                    Err(other) => return Poll::Ready(Some(Ok(other))),
                },
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.body.size_hint();
        let pending = self.pending.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + pending);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + pending);
        }
        hint
    }
}
