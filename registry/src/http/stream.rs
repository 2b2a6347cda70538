//! The API's socket wrapper: it sends file windows (see `storage::local::window`) with
//! sendfile(2), so a pull costs no copy through user space, and it ends a
//! connection whose client has read nothing for the send timeout.

use std::fs::File;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::storage::local::window;

/// The client's address, for handlers (`ConnectInfo<ClientAddr>`).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

/// A number unique to each accepted connection of the process (a request
/// extension), for what must be told apart per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// An accepted API connection.
pub struct ApiStream {
    socket: TcpStream,
    /// How long a write may wait for the client to read.
    send_timeout: Duration,
    /// Running while a write waits; reset whenever one makes progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl ApiStream {
    pub fn new(socket: TcpStream, send_timeout: Duration) -> Self {
        Self {
            socket,
            send_timeout,
            stalled: None,
        }
    }

    /// Passes a write's outcome on, timing how long writes wait for the
    /// client: one that has read nothing for `send_timeout` gets an error
    /// (and the connection ends).
    fn watch_stall<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.send_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if stalled.as_mut().poll(cx).is_ready() {
            self.stalled = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for the send timeout",
            )));
        }
        Poll::Pending
    }
    fn write_some(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        for (i, buf) in bufs.iter().enumerate() {
            if let Some((file, offset, count)) = window::lookup(buf.as_ptr(), buf.len()) {
                if i == 0 {
                    return match ready!(self.poll_sendfile(cx, &file, offset, count)) {
                        // A file system without sendfile: write the mapped bytes.
                        Err(e) if sendfile_unsupported(&e) => {
                            Pin::new(&mut self.socket).poll_write_vectored(cx, &bufs[..1])
                        }
                        done => Poll::Ready(done),
                    };
                }
                return Pin::new(&mut self.socket).poll_write_vectored(cx, &bufs[..i]);
            }
        }
        Pin::new(&mut self.socket).poll_write_vectored(cx, bufs)
    }

    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        count: usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.socket.poll_write_ready(cx))?;
            let sent = self.socket.try_io(Interest::WRITABLE, || {
                let mut at = offset;
                rustix::fs::sendfile(&self.socket, file, Some(&mut at), count)
                    .map_err(io::Error::from)
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

fn sendfile_unsupported(e: &io::Error) -> bool {
    use rustix::io::Errno;
    [Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP]
        .iter()
        .any(|n| e.raw_os_error() == Some(n.raw_os_error()))
}

impl AsyncRead for ApiStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for ApiStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// Writes the buffers before the first file window as usual; a window
    /// at the front goes out with sendfile. (hyper calls again with what is
    /// left, so one kind per call is enough.)
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = self.write_some(cx, bufs);
        self.watch_stall(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        // hyper then queues body chunks instead of copying them into its
        // own buffer, so windows reach us as they are.
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}
