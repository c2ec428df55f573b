//! A real API server on a loopback port over a log on disk, and a small HTTP client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use callstate_log::{Log, LogOptions};
use callstate_schemas::Event;
use callstate_server::{App, ServerConfig, serve};
use serde_json::Value;

/// A server in its own runtime; stopped (gracefully) on drop.
pub struct Server {
    /// Address it listens on.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server over a new log in a temporary directory.
    pub fn start(config: ServerConfig) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Server::start_in(dir.path(), 5_000, config);
        s._dir = Some(dir);
        s
    }

    /// Starts a server over the log in `dir` (created if needed).
    pub fn start_in(dir: &std::path::Path, segment_rows: usize, config: ServerConfig) -> Server {
        let log = Log::open(dir, LogOptions { segment_rows }).unwrap();
        let app = App::new(Arc::new(log), config).unwrap();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = callstate_server::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(l.local_addr().unwrap()).unwrap();
                serve(l, app, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        Server {
            addr: addr_rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
            _dir: None,
        }
    }

    /// The URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A client that returns every status as an answer.
pub fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
}

/// Status, content type and body of an answer.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads an answer whole.
pub fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut r = r.unwrap();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    Answer {
        status: r.status().as_u16(),
        content_type,
        retry_after,
        body: r
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap(),
    }
}

/// GET.
pub fn get(url: &str) -> Answer {
    answer(agent().get(url).call())
}

/// GET with one header.
pub fn get_with(url: &str, header: (&str, &str)) -> Answer {
    answer(agent().get(url).header(header.0, header.1).call())
}

/// POST a body, with an optional bearer token.
pub fn post(url: &str, content_type: &str, body: &[u8], token: Option<&str>) -> Answer {
    let mut r = agent().post(url).header("Content-Type", content_type);
    if let Some(t) = token {
        r = r.header("Authorization", &format!("Bearer {t}"));
    }
    answer(r.send(body))
}

/// Events as NDJSON.
pub fn ndjson(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(e.to_json().as_bytes());
        out.push(b'\n');
    }
    out
}

/// Posts a stream in NDJSON batches; returns (accepted, duplicates).
pub fn post_all(s: &Server, events: &[Event], batch: usize, token: Option<&str>) -> (u64, u64) {
    let (mut acc, mut dup) = (0, 0);
    for chunk in events.chunks(batch) {
        let a = post(
            &s.url("/api/v1/events"),
            "application/x-ndjson",
            &ndjson(chunk),
            token,
        );
        assert_eq!(a.status, 200, "{}", a.text());
        let v = a.json();
        assert_eq!(v["rejected"], serde_json::json!([]));
        acc += v["accepted"].as_u64().unwrap();
        dup += v["duplicates"].as_u64().unwrap();
    }
    (acc, dup)
}

/// The status a POST of `len` bytes gets from its headers alone (a raw request: clients
/// differ in whether they read an early answer while still sending).
pub fn oversized_post_status(s: &Server, len: usize, token: &str) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    write!(
        c,
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n\
         Authorization: Bearer {token}\r\nContent-Length: {len}\r\n\r\n"
    )
    .unwrap();
    let mut line = String::new();
    BufReader::new(c).read_line(&mut line).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
