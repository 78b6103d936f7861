//! The HTTP/1 accept loop and the limits that keep slow or numerous clients from starving the
//! server: a header-read deadline that is also the idle keep-alive limit, a cap on open
//! connections, and a cap on requests in progress answered with a 503.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use ipnet::IpNet;
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
    /// Reverse proxies (load balancers) in front of the server: a request from one of them
    /// comes from the client its `X-Forwarded-For` names (see [`client_of`]). Empty: the TCP
    /// peer is the client, and `X-Forwarded-For` is ignored.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_concurrent_requests: 256,
            trusted_proxies: Vec::new(),
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

/// The client a request comes from: the TCP `peer`, unless the peer is a trusted proxy — then
/// the right-most `X-Forwarded-For` address that is not a trusted proxy itself. The addresses
/// left of it were written by the client and could be anything; an entry that is not an
/// address stops the walk at the proxy that passed it on. The port is the peer's.
pub(crate) fn client_of(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> SocketAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip.to_canonical()));
    if !is_trusted(peer.ip()) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .collect();
    let mut client = peer.ip();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => client = ip,
            Ok(ip) => return SocketAddr::new(ip.to_canonical(), peer.port()),
            Err(_) => break,
        }
    }
    SocketAddr::new(client, peer.port())
}

/// The header a reverse proxy appends the address it received a request from to.
const FORWARDED_FOR: &str = "x-forwarded-for";

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
    let trusted: Arc<[IpNet]> = limits.trusted_proxies.clone().into();
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
        let trusted = trusted.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                // Every consumer of the client's address (key CIDR allowlists, sign-in
                // throttles, audit) reads it from here.
                let client = client_of(peer, request.headers(), &trusted);
                request.extensions_mut().insert(ConnectInfo(client));
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

    fn client(peer: &str, forwarded: &[&str], trusted: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append(FORWARDED_FOR, value.parse().unwrap());
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_of(peer.parse().unwrap(), &headers, &trusted)
            .ip()
            .to_string()
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client() {
        let lb = ["10.0.0.0/8"];
        // No proxy trusted, or the peer is not one: the peer, whatever the header says.
        assert_eq!(client("10.0.0.2:1", &["203.0.113.7"], &[]), "10.0.0.2");
        assert_eq!(
            client("198.51.100.9:1", &["203.0.113.7"], &lb),
            "198.51.100.9"
        );
        // The right-most untrusted hop; what the client wrote before it does not count.
        assert_eq!(client("10.0.0.2:1", &["203.0.113.7"], &lb), "203.0.113.7");
        assert_eq!(
            client("10.0.0.2:1", &["1.2.3.4, 203.0.113.7, 10.0.0.3"], &lb),
            "203.0.113.7"
        );
        assert_eq!(
            client("10.0.0.2:1", &["1.2.3.4", "203.0.113.7"], &lb),
            "203.0.113.7"
        );
        // A hop that is no address stops the walk at the proxy that passed it on.
        assert_eq!(
            client("10.0.0.2:1", &["203.0.113.7, junk, 10.0.0.3"], &lb),
            "10.0.0.3"
        );
        assert_eq!(client("10.0.0.2:1", &[], &lb), "10.0.0.2");
        // IPv4-mapped forms are the IPv4 address.
        assert_eq!(
            client("[::ffff:10.0.0.2]:1", &["::ffff:203.0.113.7"], &lb),
            "203.0.113.7"
        );
    }

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
