//! Coalescing outgoing `GET`s: concurrent identical reads make one request.
//!
//! When a popular resource is wanted by many tasks at once (a cache in
//! front of it just expired, a process just started), sending the same
//! `GET` a hundred times adds nothing but load. [`CoalesceMiddleware`]
//! sends it once: the first request for a [`RequestKey`] (method, URI and
//! the headers you name) goes out, and every identical request made while
//! it is in flight waits for it and gets a copy of its response. It drives
//! rebound's [`Coalescer`], so a cancelled first request hands over to a
//! waiting one, errors are shared (or not), the wait can be bounded, and
//! `coalesced_calls_total` / `coalesce_followers` count what was merged.
//!
//! Only `GET` and `HEAD` are coalesced; every other method passes
//! through. Headers that change the answer — `Authorization`, `Cookie`,
//! `Accept`, `Accept-Language`, `Accept-Encoding` by default — are part
//! of the key, so two users never share a response. The response is
//! buffered to be shared (each caller gets its own copy of the status,
//! headers and body), up to [`max_body`](CoalesceMiddleware::max_body)
//! bytes.
//!
//! Put it **before** the retry middleware in the client builder (the outer
//! one), so the herd shares one request *with* its retries:
//!
//! ```
//! use rebound::coalesce::Coalescer;
//! use rebound_http::coalesce::CoalesceMiddleware;
//! use rebound_http::RetryMiddleware;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(CoalesceMiddleware::new(Coalescer::new().dependency("catalog")))
//!     .with(RetryMiddleware::builder().build()?)
//!     .build();
//! # let _ = client;
//! # Ok(()) }
//! ```
//!
//! For a tower stack over `http::Request`s, [`RequestKey::of_http`] is the
//! key function of rebound's `CoalesceLayer`.

use std::fmt;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method, StatusCode, Version};
use hyper::body::Bytes;
use rebound::coalesce::{CoalesceError, Coalescer};
use reqwest::{Request, Response, ResponseBuilderExt};
use reqwest_middleware::{Middleware, Next};

/// The headers in the key by default: those that change a response.
pub const DEFAULT_KEY_HEADERS: [HeaderName; 5] = [
    http::header::AUTHORIZATION,
    http::header::COOKIE,
    http::header::ACCEPT,
    http::header::ACCEPT_LANGUAGE,
    http::header::ACCEPT_ENCODING,
];

/// What makes two requests the same: method, URI and the values of the
/// chosen headers (in order; an absent header counts as absent).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestKey {
    method: Method,
    uri: String,
    headers: Vec<Option<HeaderValue>>,
}

impl RequestKey {
    fn of(
        method: &Method,
        uri: String,
        get: impl Fn(&HeaderName) -> Option<HeaderValue>,
        headers: &[HeaderName],
    ) -> Option<Self> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        Some(RequestKey {
            method: method.clone(),
            uri,
            headers: headers.iter().map(get).collect(),
        })
    }

    /// The key of a reqwest request, or `None` unless it is a `GET` or a
    /// `HEAD`.
    pub fn of_reqwest(req: &Request, headers: &[HeaderName]) -> Option<Self> {
        RequestKey::of(
            req.method(),
            req.url().as_str().to_owned(),
            |h| req.headers().get(h).cloned(),
            headers,
        )
    }

    /// The key of an `http` request, or `None` unless it is a `GET` or a
    /// `HEAD`: the key function of a tower `CoalesceLayer`, e.g.
    /// `|req: &http::Request<B>| RequestKey::of_http(req, &DEFAULT_KEY_HEADERS)`.
    pub fn of_http<B>(req: &http::Request<B>, headers: &[HeaderName]) -> Option<Self> {
        RequestKey::of(
            req.method(),
            req.uri().to_string(),
            |h| req.headers().get(h).cloned(),
            headers,
        )
    }
}

/// A response buffered to be shared.
#[derive(Debug, Clone)]
pub struct SharedResponse {
    status: StatusCode,
    version: Version,
    headers: http::HeaderMap,
    url: url::Url,
    body: Bytes,
}

impl SharedResponse {
    fn to_response(&self) -> Response {
        let mut b = http::Response::builder()
            .status(self.status)
            .version(self.version)
            .url(self.url.clone());
        if let Some(h) = b.headers_mut() {
            *h = self.headers.clone();
        }
        match b.body(self.body.clone()) {
            Ok(r) => Response::from(r),
            // The parts came from a valid response.
            Err(_) => Response::from(http::Response::new(self.body.clone())),
        }
    }
}

/// The error of a coalesced request: the first request's error, shared by
/// every request that waited for it; or a wait that ran out.
#[derive(Debug, Clone)]
pub struct CoalescedError(CoalesceError<reqwest_middleware::Error>);

impl CoalescedError {
    /// The shared error of the request that was sent, if it failed.
    pub fn request_error(&self) -> Option<&reqwest_middleware::Error> {
        self.0.failed().map(|e| &**e)
    }

    /// Whether this request waited longer than the coalescer's `max_wait`.
    pub fn is_wait_elapsed(&self) -> bool {
        self.0.is_wait_elapsed()
    }
}

impl fmt::Display for CoalescedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for CoalescedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.request_error()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A response body larger than the middleware's `max_body`: it cannot be
/// buffered to be shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyTooLarge {
    /// The limit, in bytes.
    pub max_body: usize,
}

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a coalesced response body is larger than max_body ({} bytes); raise it or do not coalesce this request",
            self.max_body
        )
    }
}

impl std::error::Error for BodyTooLarge {}

/// Sends concurrent identical `GET` and `HEAD` requests once; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct CoalesceMiddleware {
    herd: Coalescer<RequestKey, SharedResponse, reqwest_middleware::Error>,
    headers: Arc<[HeaderName]>,
    max_body: usize,
}

impl CoalesceMiddleware {
    /// A middleware merging requests through `herd` (its dependency label,
    /// wait bound and error sharing), keyed on [`DEFAULT_KEY_HEADERS`],
    /// buffering bodies up to 16 MiB.
    pub fn new(herd: Coalescer<RequestKey, SharedResponse, reqwest_middleware::Error>) -> Self {
        CoalesceMiddleware {
            herd,
            headers: Arc::from(DEFAULT_KEY_HEADERS.to_vec()),
            max_body: 16 << 20,
        }
    }

    /// The headers whose values are part of the key. Default
    /// [`DEFAULT_KEY_HEADERS`].
    #[must_use]
    pub fn key_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        self.headers = headers.into_iter().collect();
        self
    }

    /// The largest response body shared, in bytes; a larger one fails the
    /// coalesced request with [`BodyTooLarge`]. Default 16 MiB.
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The coalescer.
    pub fn coalescer(&self) -> &Coalescer<RequestKey, SharedResponse, reqwest_middleware::Error> {
        &self.herd
    }
}

async fn buffer(
    resp: Response,
    max_body: usize,
) -> Result<SharedResponse, reqwest_middleware::Error> {
    if resp.content_length().is_some_and(|n| n > max_body as u64) {
        return Err(reqwest_middleware::Error::middleware(BodyTooLarge {
            max_body,
        }));
    }
    let (status, version, headers, url) = (
        resp.status(),
        resp.version(),
        resp.headers().clone(),
        resp.url().clone(),
    );
    let mut resp = resp;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > max_body {
            return Err(reqwest_middleware::Error::middleware(BodyTooLarge {
                max_body,
            }));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(SharedResponse {
        status,
        version,
        headers,
        url,
        body: Bytes::from(body),
    })
}

#[async_trait::async_trait]
impl Middleware for CoalesceMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let Some(key) = RequestKey::of_reqwest(&req, &self.headers) else {
            return next.run(req, extensions).await;
        };
        let max_body = self.max_body;
        let shared = self
            .herd
            .run(key, move || async move {
                let resp = next.run(req, extensions).await?;
                buffer(resp, max_body).await
            })
            .await;
        match shared {
            Ok(r) => Ok(r.to_response()),
            Err(e) => Err(reqwest_middleware::Error::middleware(CoalescedError(e))),
        }
    }
}
