//! Whether a request's body was read to its end. A handler that answers
//! before reading the body (an error found first, a store that is down)
//! leaves bytes on the connection: the response then says
//! `Connection: close`, so the client opens a fresh connection for its next
//! request, and the rest of the body is read and discarded for up to
//! [`LINGER`] — a client still sending would otherwise meet a reset
//! connection and lose the answer (what nginx calls a lingering close).
//! A body that failed (it stalled past the body timeout, the client went
//! away) is not drained: the connection just closes.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Response, header};
use http_body::{Body, Frame, SizeHint};

/// How long the rest of an unread body is read before the connection is
/// closed anyway.
const LINGER: Duration = Duration::from_secs(30);

const READING: u8 = 0;
const ENDED: u8 = 1;
const FAILED: u8 = 2;

/// A request body that records how its reading ended, and reads what is
/// left when it is dropped unread.
pub struct Drained<B: Body + Send + Unpin + 'static> {
    /// None once dropped.
    inner: Option<B>,
    state: Arc<AtomicU8>,
}

/// How the body it watches was read, for the response.
#[derive(Clone)]
pub struct DrainedFlag(Arc<AtomicU8>);

impl<B: Body + Send + Unpin + 'static> Drained<B> {
    /// Watches `inner`; `ended` says there is no body at all (the request
    /// head said so).
    pub fn wrap(inner: B, ended: bool) -> (Self, DrainedFlag) {
        let state = Arc::new(AtomicU8::new(if ended { ENDED } else { READING }));
        let flag = DrainedFlag(state.clone());
        let body = Drained {
            inner: Some(inner),
            state,
        };
        (body, flag)
    }
}

impl<B: Body + Send + Unpin + 'static> Drop for Drained<B> {
    fn drop(&mut self) {
        let Some(mut inner) = self.inner.take() else {
            return;
        };
        if self.state.load(Ordering::Acquire) != READING {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let discard = async {
                while let Some(Ok(_)) =
                    std::future::poll_fn(|cx| Pin::new(&mut inner).poll_frame(cx)).await
                {
                }
            };
            let _ = tokio::time::timeout(LINGER, discard).await;
        });
    }
}

impl DrainedFlag {
    /// Adds `Connection: close` to `response` unless the body was read to
    /// its end.
    pub fn close_unless_drained<B>(&self, response: &mut Response<B>) {
        if self.0.load(Ordering::Acquire) != ENDED {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

impl<B: Body + Send + Unpin + 'static> Body for Drained<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        let state = match &polled {
            Poll::Ready(None) => ENDED,
            Poll::Ready(Some(Ok(_))) if inner.is_end_stream() => ENDED,
            Poll::Ready(Some(Err(_))) => FAILED,
            _ => READING,
        };
        if state != READING {
            this.state.store(state, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body as AxumBody;

    fn closes<B: http_body::Body + Send + Unpin + 'static>(body: B, flag: &DrainedFlag) -> bool {
        drop(body);
        let mut response = Response::new(());
        flag.close_unless_drained(&mut response);
        response.headers().get(header::CONNECTION).is_some()
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_keeps_the_connection() {
        let (mut body, flag) = Drained::wrap(AxumBody::from("some bytes"), false);
        while std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
            .await
            .is_some()
        {}
        assert!(!closes(body, &flag));
    }

    #[tokio::test]
    async fn an_unread_body_closes_the_connection() {
        let (body, flag) = Drained::wrap(AxumBody::from("some bytes"), false);
        assert!(closes(body, &flag));
    }

    #[tokio::test]
    async fn a_failed_body_closes_the_connection() {
        let failing = AxumBody::from_stream(futures::stream::iter([Err::<bytes::Bytes, _>(
            std::io::Error::other("stalled"),
        )]));
        let (mut body, flag) = Drained::wrap(failing, false);
        let first = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(matches!(first, Some(Err(_))));
        assert!(closes(body, &flag));
    }

    #[tokio::test]
    async fn no_body_keeps_the_connection() {
        let (body, flag) = Drained::wrap(AxumBody::empty(), true);
        assert!(!closes(body, &flag));
    }
}
