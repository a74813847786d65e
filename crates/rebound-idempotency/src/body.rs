//! The body of responses from the layer.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use crate::store::BoxError;

pin_project! {
    /// The body of responses from [`IdempotencyService`](crate::IdempotencyService):
    /// a buffered body (a stored or replayed response, a problem), or the
    /// handler's own body, passed through (a response that is not stored,
    /// or one larger than the response cap, whose first bytes were read
    /// before the layer knew).
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Full { #[pin] body: Full<Bytes> },
        Stream { #[pin] body: B },
        Continued { prefix: Option<Bytes>, rest: Pin<Box<B>> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn full(bytes: Bytes) -> Self {
        ResponseBody {
            kind: Kind::Full {
                body: Full::new(bytes),
            },
        }
    }

    pub(crate) fn stream(body: B) -> Self {
        ResponseBody {
            kind: Kind::Stream { body },
        }
    }

    /// The bytes already read from a body, then the rest of it.
    pub(crate) fn continued(prefix: Bytes, rest: Pin<Box<B>>) -> Self {
        ResponseBody {
            kind: Kind::Continued {
                prefix: Some(prefix).filter(|p| !p.is_empty()),
                rest,
            },
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Full { .. } => f.write_str("ResponseBody::Full"),
            Kind::Stream { .. } | Kind::Continued { .. } => f.write_str("ResponseBody::Stream"),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Full { body } => body.poll_frame(cx).map_err(|never| match never {}),
            KindProj::Stream { body } => body.poll_frame(cx).map_err(Into::into),
            KindProj::Continued { prefix, rest } => {
                if let Some(first) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(first))));
                }
                rest.as_mut().poll_frame(cx).map_err(Into::into)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { body } => body.is_end_stream(),
            Kind::Stream { body } => body.is_end_stream(),
            Kind::Continued { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { body } => body.size_hint(),
            Kind::Stream { body } => body.size_hint(),
            Kind::Continued { prefix, rest } => {
                let extra = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let hint = rest.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(hint.lower() + extra);
                if let Some(upper) = hint.upper() {
                    out.set_upper(upper + extra);
                }
                out
            }
        }
    }
}
