//! Shared setup of the poller tests: a simulated cluster behind a mock CUCM on loopback, and a
//! poller on virtual time writing to a real log.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use callstate_cucm::client::ClientConfig;
use callstate_cucm::{Clock, Inventory, PollerConfig, VirtualClock};
use callstate_mockcucm::{CucmModel, MockCucm, MockOptions};
use callstate_sim::{Scenario, Truth};

/// A simulated cluster and its mock, on a virtual clock starting at the scenario's start.
pub struct Cluster {
    pub truth: Truth,
    pub mock: Arc<MockCucm>,
    pub clock: Arc<VirtualClock>,
}

pub fn cluster(toml: &str, seed: u64, opts: MockOptions) -> Cluster {
    let sc = Scenario::from_toml(toml).unwrap();
    let (model, truth) = CucmModel::simulate(&sc, seed).unwrap();
    let clock = Arc::new(VirtualClock::new(truth.start));
    let c = clock.clone();
    let mock = MockCucm::new(model, opts, truth.start, Arc::new(move || c.now()));
    Cluster { truth, mock, clock }
}

/// Serves the mock on a loopback port (as `as_node`'s Tomcat, or as the whole cluster).
pub async fn serve(mock: &Arc<MockCucm>, as_node: Option<&str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = mock.router(as_node);
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// A poller configuration against `nodes` with the mock's credentials.
pub fn config(nodes: Vec<String>, dir: &std::path::Path) -> PollerConfig {
    let opts = MockOptions::default();
    let client = ClientConfig {
        nodes,
        user: opts.user,
        password: opts.password,
        ca_file: None,
        insecure: false,
        timeout: Duration::from_secs(20),
    };
    let mut cfg = PollerConfig::new("CL1", client, dir.join("risport-CL1.seq"));
    cfg.inventory = Inventory::Axl {
        pattern: "%".into(),
    };
    cfg
}

pub const MINUTE: i64 = 60_000_000;

/// Serves the mock over HTTPS with the test certificate (`tests/tls`).
pub async fn serve_tls(mock: &Arc<MockCucm>) -> String {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = mock.router(None);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                // a client that refuses the certificate ends the handshake: nothing to serve
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    format!("https://127.0.0.1:{}", addr.port())
}

/// A closed loopback port (nothing listens there).
pub fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// A small cluster's hour: 40 devices, a node crash at 20 min for 10 min.
pub const HOUR: &str = r#"
name = "risport-hour"
duration = "1h"
[topology]
devices = 40
[[faults]]
kind = "node_crash"
at = "20m"
node = "CL1-cucm1"
down_for = "10m"
"#;

/// Serves the mock as one node's Tomcat (503 while that node is down).
pub async fn serve_node(mock: &Arc<MockCucm>, node: &str) -> String {
    serve(mock, Some(node)).await
}

/// A day with a node failover (06:00, 20 min), a CTIManager failover (12:00) and a site
/// outage (16:00, 15 min), 600 devices: the end-to-end tests' day.
pub const DAY: &str = r#"
name = "cucm-day"
duration = "24h"
[topology]
devices = 600
[[faults]]
kind = "node_crash"
at = "6h"
node = "CL1-cucm1"
down_for = "20m"
[[faults]]
kind = "ctimanager_crash"
at = "12h"
reconnect_after = "25s"
[[faults]]
kind = "site_outage"
at = "16h"
site = "CL1-S2"
duration = "15m"
"#;
