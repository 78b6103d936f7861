//! The HTTP/1 accept loop and the limits that keep slow or numerous clients from starving the
//! server: a header-read deadline that is also the idle keep-alive limit, a cap on open
//! connections, and a cap on requests in progress answered with a 503.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::error::ApiError;

/// How long to pause accepting after the listener fails (e.g. out of file descriptors), so
/// the loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Limits on client connections and requests.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Longest wait for a request's headers, counted from the connection's start or from the
    /// previous response (so it also closes idle keep-alive connections).
    pub header_read_timeout: Duration,
    /// Longest wait for a request's body once its headers arrived; answered 408 before any
    /// authentication.
    pub body_read_timeout: Duration,
    /// Most open client connections; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Most requests in progress (their body being read or being handled); further ones are
    /// answered 503 at once.
    pub max_concurrent_requests: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_concurrent_requests: 256,
        }
    }
}

/// Middleware (inside the body read): admits a request only while fewer than the cap are in
/// progress.
pub(crate) async fn limit_concurrency(
    State(in_progress): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    match in_progress.try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => ApiError::server_busy().into_response(),
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &connections) => accepted,
        };
        let Some((stream, peer, permit)) = accepted else {
            continue;
        };
        let app = app.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(request.map(Body::new))
            },
        );
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Waits for a connection slot, then for a connection. `None` after a failed accept.
async fn accept(
    listener: &TcpListener,
    connections: &Arc<Semaphore>,
) -> Option<(
    tokio::net::TcpStream,
    SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
)> {
    let permit = connections.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, permit)),
        Err(e) => {
            tracing::warn!(error = %e, "accepting a connection failed");
            tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::routing::get;
    use tokio::sync::{Notify, oneshot};

    use super::*;

    fn get_request(path: &str) -> Request {
        Request::builder()
            .uri(path)
            .body(Body::empty())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn requests_beyond_the_cap_get_a_503_until_a_slot_frees() {
        let (entered, in_handler) = oneshot::channel::<()>();
        let entered = Arc::new(std::sync::Mutex::new(Some(entered)));
        let finish = Arc::new(Notify::new());
        let app = Router::new()
            .route(
                "/slow",
                get({
                    let finish = finish.clone();
                    move || async move {
                        if let Some(entered) = entered.lock().ok().and_then(|mut e| e.take()) {
                            let _ = entered.send(());
                        }
                        finish.notified().await;
                        "done"
                    }
                }),
            )
            .route("/fast", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(Semaphore::new(1)),
                limit_concurrency,
            ));

        let slow = tokio::spawn(app.clone().oneshot(get_request("/slow")));
        assert!(
            in_handler.await.is_ok(),
            "the slow request reached its handler"
        );
        let busy = app.clone().oneshot(get_request("/fast")).await;
        let busy = busy.unwrap_or_else(|e| match e {});
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers()["retry-after"], "1");

        finish.notify_one();
        let slow = slow.await.map(|r| r.map(|r| r.status()));
        assert!(matches!(slow, Ok(Ok(StatusCode::OK))), "{slow:?}");
        let fast = app.oneshot(get_request("/fast")).await;
        assert_eq!(fast.map(|r| r.status()).ok(), Some(StatusCode::OK));
    }
}
