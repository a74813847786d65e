//! A client connection the proxy can cut with a reset.
//!
//! hyper owns the socket while it serves the connection; to reset it (TCP
//! RST, not a polite FIN) the proxy marks the connection killed and drops
//! it, and the socket's wrapper sets `SO_LINGER` to zero just before the
//! socket closes, which makes the kernel send RST.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// The kill switch of one client connection.
#[derive(Debug, Default)]
pub(crate) struct Kill {
    killed: AtomicBool,
    notify: Notify,
}

impl Kill {
    /// Marks the connection to be reset and wakes its task, which drops it.
    pub(crate) fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Resolves once [`kill`](Self::kill) was called.
    pub(crate) async fn killed(&self) {
        if self.killed.load(Ordering::Acquire) {
            return;
        }
        self.notify.notified().await;
    }

    fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }
}

/// A client socket that closes with a reset once its [`Kill`] fired.
pub(crate) struct KillableStream {
    stream: TcpStream,
    kill: std::sync::Arc<Kill>,
}

impl KillableStream {
    pub(crate) fn new(stream: TcpStream, kill: std::sync::Arc<Kill>) -> Self {
        KillableStream { stream, kill }
    }
}

impl Drop for KillableStream {
    fn drop(&mut self) {
        if self.kill.is_killed() {
            // Zero linger: closing sends RST and discards unsent data,
            // without blocking (the blocking case is a non-zero linger).
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
