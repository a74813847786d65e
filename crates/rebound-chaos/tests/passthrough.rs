//! What a healthy proxy preserves: methods, targets, headers (all but the
//! hop-by-hop ones), status codes and bodies, streamed both ways; and what
//! it answers itself: 502 for an upstream that is down, 400 for a
//! malformed request, 405 for CONNECT.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use common::{client, proxy, within, Upstream};
use rebound_chaos::{ChaosProxy, FaultKind};
use tokio::sync::mpsc;

#[tokio::test]
async fn methods_targets_headers_and_bodies_pass_as_they_are() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "").await;
    let c = client();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = c
            .request(m, format!("{}/orders/17?expand=items&x=%20y", proxy.url()))
            .header("idempotency-key", "k-17")
            .header("x-attempt-count", "2")
            .header("authorization", "Bearer t")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "dropped")
            .header("te", "trailers")
            .body(format!("body of {method}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{method}");
        // Hop-by-hop response headers are gone; the rest arrive; Via says
        // the proxy passed it.
        assert_eq!(r.headers()["x-upstream"], "yes");
        assert!(r.headers().get("x-hop").is_none());
        assert_eq!(r.headers()["via"], "1.1 rebound-chaos");
        assert!(r.headers().get("x-rebound-chaos").is_none());
        assert_eq!(
            r.text().await.unwrap(),
            format!("{method} /orders/17?expand=items&x=%20y body of {method}")
        );
        let seen = up.seen().pop().unwrap();
        assert_eq!(seen.method.as_str(), method);
        assert_eq!(seen.headers["idempotency-key"], "k-17");
        assert_eq!(seen.headers["x-attempt-count"], "2");
        assert_eq!(seen.headers["authorization"], "Bearer t");
        assert_eq!(seen.headers["host"], up.addr.to_string().as_str());
        assert_eq!(seen.headers["via"], "1.1 rebound-chaos");
        for hop in ["x-hop", "te", "connection"] {
            assert!(
                seen.headers.get(hop).is_none(),
                "{hop} reached the upstream"
            );
        }
    }
    let n = proxy.counts();
    assert_eq!((n.requests(), n.passed(), n.faulted()), (7, 7, 0));
}

#[tokio::test]
async fn status_codes_pass_as_they_are() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "").await;
    let c = client();
    for code in [201u16, 204, 301, 404, 409, 429, 500, 503] {
        let r = c
            .get(format!("{}/status/{code}", proxy.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code);
        assert!(r.headers().get("x-rebound-chaos").is_none());
    }
}

#[tokio::test]
async fn a_large_body_arrives_whole() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "").await;
    let c = client();
    let body = c
        .get(format!("{}/bytes/3000000", proxy.url()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), 3_000_000);
    assert!(body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == b'a' + (i % 26) as u8));
    let upload = vec![b'z'; 2_000_000];
    let r = c
        .put(format!("{}/echo", proxy.url()))
        .body(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.seen().pop().unwrap().body.len(), 2_000_000);
}

#[tokio::test]
async fn response_bodies_stream_through_without_waiting_for_the_end() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "").await;
    let mut r = client()
        .get(format!("{}/stream", proxy.url()))
        .send()
        .await
        .unwrap();
    // The first half arrives while the upstream still holds the second.
    let first = within("the first half", r.chunk()).await.unwrap().unwrap();
    assert_eq!(first, "first|");
    up.release();
    let second = within("the second half", r.chunk()).await.unwrap().unwrap();
    assert_eq!(second, "second");
}

#[tokio::test]
async fn request_bodies_stream_through_without_waiting_for_the_end() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "").await;
    let mut pieces = up.pieces();
    let (tx, rx) = mpsc::unbounded_channel::<Result<Bytes, std::io::Error>>();
    let body = reqwest::Body::wrap_stream(futures_util::stream::poll_fn({
        let mut rx = rx;
        move |cx| rx.poll_recv(cx)
    }));
    let url = format!("{}/upload", proxy.url());
    let request = tokio::spawn(async move { client().post(url).body(body).send().await });
    tx.send(Ok(Bytes::from_static(b"piece one;"))).unwrap();
    // The upstream has the first piece while the client still holds the
    // second.
    assert_eq!(
        within("piece one upstream", pieces.recv()).await.unwrap(),
        "piece one;"
    );
    tx.send(Ok(Bytes::from_static(b"piece two"))).unwrap();
    assert_eq!(
        within("piece two upstream", pieces.recv()).await.unwrap(),
        "piece two"
    );
    drop(tx);
    let r = within("the answer", request).await.unwrap().unwrap();
    assert_eq!(r.text().await.unwrap(), "19 bytes");
}

#[tokio::test]
async fn an_upstream_that_is_down_gets_a_502_that_says_so() {
    // A port with nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let upstream = format!("http://127.0.0.1:{port}");
    let proxy = ChaosProxy::builder(&upstream).start().await.unwrap();
    let r = client()
        .get(format!("{}/stock", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["x-rebound-chaos"], "upstream_error");
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with(&format!("rebound chaos: the upstream {upstream} failed: ")),
        "{body}"
    );
    assert!(body.to_lowercase().contains("refused"), "{body}");
    let n = proxy.counts();
    assert_eq!((n.upstream_requests(), n.upstream_errors()), (1, 1));
}

#[tokio::test]
async fn malformed_requests_get_a_400_and_the_proxy_carries_on() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "").await;
    let addr = proxy.addr();
    for garbage in [
        &b"NOT HTTP AT ALL\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
    ] {
        let answer = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(garbage).unwrap();
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    }
    assert_eq!(up.hits(), 0);
    let r = client().get(proxy.url()).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn connect_is_refused_with_a_reason() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "").await;
    let addr = proxy.addr();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.contains("CONNECT is not supported"), "{answer}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn keep_alive_and_http_1_0_clients_work() {
    let up = Upstream::start().await;
    let proxy = proxy(&up, "").await;
    let addr = proxy.addr();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        // Two requests on one connection, then an HTTP/1.0 one that closes.
        s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.0\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert_eq!(
        answer.matches("HTTP/1.1 200 OK").count() + answer.matches("HTTP/1.0 200 OK").count(),
        3,
        "{answer}"
    );
    assert!(
        answer.contains("GET /a ") && answer.contains("GET /b ") && answer.contains("GET /c "),
        "{answer}"
    );
    assert_eq!(up.hits(), 3);
    assert_eq!(proxy.counts().injected(FaultKind::Reset), 0);
}

#[tokio::test]
async fn an_upstream_path_prefix_is_put_in_front() {
    let up = Upstream::start().await;
    let proxy = ChaosProxy::builder(format!("{}/api/v2/", up.url))
        .start()
        .await
        .unwrap();
    let r = client()
        .get(format!("{}/stock?sku=1", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "GET /api/v2/stock?sku=1 ");
}

#[tokio::test]
async fn bad_upstreams_and_busy_ports_are_refused_at_start() {
    let e = ChaosProxy::builder("https://127.0.0.1:1")
        .start()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("https is not supported"), "{e}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let e = ChaosProxy::builder("http://127.0.0.1:1")
        .listen(taken.local_addr().unwrap())
        .start()
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot listen for the proxy on 127.0.0.1:"),
        "{e}"
    );
}
