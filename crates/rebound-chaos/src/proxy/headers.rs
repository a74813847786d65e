//! What a forwarding proxy changes in a message's head, and the upstream's
//! address.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the
//! message, so they are removed in both directions: `Connection` and every
//! header it names, `Keep-Alive`, `Proxy-Connection`, `Proxy-Authenticate`,
//! `Proxy-Authorization`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`.
//! hyper frames each body anew on each side. `Host` becomes the upstream's
//! authority, and `Via: 1.1 rebound-chaos` is appended to requests and
//! responses, as RFC 9110 §7.6.3 asks of proxies. Nothing else is touched.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};

use crate::StartError;

/// The `Via` entry the proxy appends.
pub(crate) const VIA: &str = "1.1 rebound-chaos";

/// Removes the hop-by-hop headers, and appends `Via`.
pub(crate) fn forwardable(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.append(header::VIA, HeaderValue::from_static(VIA));
}

/// Where requests go.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    authority: Authority,
    host: HeaderValue,
    /// A path prefix from the upstream URL, without its trailing `/`.
    base: String,
    text: String,
}

impl Upstream {
    pub(crate) fn parse(url: &str) -> Result<Upstream, StartError> {
        let refuse = |reason: String| StartError::Upstream {
            url: url.to_string(),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|e| refuse(format!("{e}; expected a URL such as http://127.0.0.1:3001")))?;
        match uri.scheme() {
            Some(s) if *s == Scheme::HTTP => {}
            Some(s) if *s == Scheme::HTTPS => {
                return Err(refuse(
                    "https is not supported: the proxy speaks plain HTTP/1.1 to its upstream (point it at the service's plain-HTTP port)".into(),
                ))
            }
            _ => return Err(refuse("expected a URL starting with http://, such as http://127.0.0.1:3001".into())),
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| refuse("the URL has no host".into()))?;
        if authority.as_str().contains('@') {
            return Err(refuse("credentials in the URL are not supported".into()));
        }
        if uri.query().is_some() {
            return Err(refuse(
                "the URL has a query; give a host and an optional path prefix".into(),
            ));
        }
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| refuse("the host is not a valid Host header".into()))?;
        Ok(Upstream {
            base: uri.path().trim_end_matches('/').to_string(),
            authority,
            host,
            text: url.trim_end_matches('/').to_string(),
        })
    }

    /// The upstream URI of a request with this target.
    pub(crate) fn uri(&self, target: Option<&PathAndQuery>) -> Result<Uri, http::Error> {
        let target = target.map_or("/", PathAndQuery::as_str);
        let path = if self.base.is_empty() {
            target.to_string()
        } else {
            format!("{}{target}", self.base)
        };
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
    }

    /// The `Host` header for the upstream.
    pub(crate) fn host(&self) -> HeaderValue {
        self.host.clone()
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_via_comes() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(
            header::PROXY_AUTHORIZATION,
            HeaderValue::from_static("Basic x"),
        );
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert("idempotency-key", HeaderValue::from_static("k-1"));
        h.insert(header::VIA, HeaderValue::from_static("1.1 edge"));
        forwardable(&mut h);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "idempotency-key", "via"]);
        let via: Vec<&str> = h
            .get_all(header::VIA)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(via, ["1.1 edge", VIA]);
    }

    #[test]
    fn upstream_urls_are_checked() {
        let u = Upstream::parse("http://127.0.0.1:3001").unwrap();
        let pq: PathAndQuery = "/orders?id=7".parse().unwrap();
        assert_eq!(
            u.uri(Some(&pq)).unwrap(),
            "http://127.0.0.1:3001/orders?id=7"
        );
        assert_eq!(u.uri(None).unwrap(), "http://127.0.0.1:3001/");
        let u = Upstream::parse("http://inventory:8080/api/").unwrap();
        assert_eq!(
            u.uri(Some(&pq)).unwrap(),
            "http://inventory:8080/api/orders?id=7"
        );
        assert_eq!(u.host(), "inventory:8080");
        for (bad, why) in [
            ("https://x", "https is not supported"),
            ("127.0.0.1:3001", "starting with http://"),
            ("http://x/?a=1", "has a query"),
            ("http://u:p@x/", "credentials"),
            ("http://exa mple", "expected a URL"),
        ] {
            let e = Upstream::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
