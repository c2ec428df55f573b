//! Serving connections: one task per connection, each watched for its client going away.
//!
//! hyper reads a connection only when it wants the next request, so a client that closes
//! its socket while its answer is being computed goes unnoticed, and the work goes on for
//! nobody. Each connection here has a watcher on a duplicate of its socket that peeks for the
//! end of the stream; when the client is gone the connection is dropped, and with it the
//! request's work (cancelled like a timeout). Shutting down stops accepting, ends the reads
//! still running at once (503), and lets writes finish for at most [`SHUTDOWN_GRACE`].
//!
//! The listening socket ([`bind`]) queues up to [`LISTEN_BACKLOG`] connections not yet
//! accepted: Rust's and tokio's default of 128 drops the SYNs of a larger storm of
//! reconnecting clients, each of which then waits a one-second retransmission.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket, TcpStream, lookup_host};
use tower::ServiceExt;

use crate::app::AppState;
use crate::router::router;

/// How long in-flight requests may take to finish once a shutdown begins; then they are
/// dropped (their work cancelled), so that a stop takes a bounded time whatever runs.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Connections the kernel queues for the API before they are accepted (it caps the figure
/// at `net.core.somaxconn`, 4096 by default since Linux 5.4).
pub const LISTEN_BACKLOG: u32 = 1024;

/// Listens on `addr` (`host:port`; the first address it resolves to) with a backlog of
/// [`LISTEN_BACKLOG`].
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let addr = lookup_host(addr).await?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} resolves to no address"),
        )
    })?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // as tokio's own `TcpListener::bind`: a restarted server binds again at once
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How often a connection with a request in flight and unread bytes is checked again.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// Resolves when the client of `watch` has closed or reset its side of the connection.
async fn client_gone(watch: TcpStream) {
    let mut buf = [0u8; 1];
    loop {
        match watch.peek(&mut buf).await {
            // end of stream, or the connection reset: the client is gone
            Ok(0) | Err(_) => return,
            // unread bytes (a body hyper is reading, a pipelined request): look again later
            Ok(_) => tokio::time::sleep(WATCH_INTERVAL).await,
        }
    }
}

/// A second handle on the same socket, for the watcher.
fn duplicate(stream: &TcpStream) -> std::io::Result<TcpStream> {
    let fd = socket2::SockRef::from(stream).try_clone()?;
    let std: std::net::TcpStream = fd.into();
    std.set_nonblocking(true)?;
    TcpStream::from_std(std)
}

fn serve_connection(
    app: &Router,
    graceful: &GracefulShutdown,
    stream: TcpStream,
    peer: SocketAddr,
    header_timeout: Duration,
) {
    let watch = match duplicate(&stream) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch a connection for its client going away");
            None
        }
    };
    let service = app
        .clone()
        .map_request(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
    // a client trickling its request head (slow loris) loses the connection at the limit
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        let gone = async {
            match watch {
                Some(w) => client_gone(w).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = conn => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            () = gone => tracing::debug!(%peer, "client gone: its request is dropped"),
        }
    });
}

/// Serves the API on `listener` until `shutdown` completes, then lets in-flight requests
/// finish for at most [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    app: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = app.clone();
    let header_timeout = app.config.header_timeout;
    let app = router(app);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    serve_connection(&app, &graceful, stream, peer, header_timeout)
                }
                Err(e) => {
                    // out of file descriptors and the like: wait a moment, keep serving
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    // reads still running end now (503); writes get the grace to finish
    state.begin_shutdown();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!(
            "requests still running {} s after the shutdown began were cut off",
            SHUTDOWN_GRACE.as_secs()
        ),
    }
    Ok(())
}
