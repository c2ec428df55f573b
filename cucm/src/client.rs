//! HTTPS to the cluster's nodes: HTTP Basic, one cookie jar per node (Tomcat's `JSESSIONID`
//! is reused instead of authenticating every call), a configured CA or an explicit
//! `insecure`, and fail-over to the next node address when one does not answer.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::CucmError;
use crate::soap;

/// How to reach the cluster.
#[derive(Clone)]
pub struct ClientConfig {
    /// Node base addresses (`https://ucm-a1:8443`), tried in order.
    pub nodes: Vec<String>,
    /// Application user.
    pub user: String,
    /// Its password (never logged; `Debug` hides it).
    pub password: String,
    /// PEM file of the CA (or the pinned self-signed certificate) to trust.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (explicit opt-in only).
    pub insecure: bool,
    /// Time limit of one request.
    pub timeout: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("nodes", &self.nodes)
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .field("ca_file", &self.ca_file)
            .field("insecure", &self.insecure)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A client of one cluster.
pub struct Client {
    nodes: Vec<(String, reqwest::Client)>,
    current: usize,
    user: String,
    password: String,
}

impl Client {
    /// Builds one HTTP client (and cookie jar) per node.
    pub fn new(cfg: &ClientConfig) -> Result<Client, CucmError> {
        if cfg.nodes.is_empty() {
            return Err(CucmError::Config(
                "no CUCM node address given (--cucm)".into(),
            ));
        }
        let ca = match &cfg.ca_file {
            Some(p) => {
                let pem = std::fs::read(p).map_err(|e| {
                    CucmError::Config(format!("cannot read the CA file {}: {e}", p.display()))
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    CucmError::Config(format!("{} is not a PEM certificate: {e}", p.display()))
                })?;
                if certs.is_empty() {
                    return Err(CucmError::Config(format!(
                        "{} holds no PEM certificate",
                        p.display()
                    )));
                }
                certs
            }
            None => Vec::new(),
        };
        let mut nodes = Vec::new();
        for base in &cfg.nodes {
            let mut b = reqwest::Client::builder()
                .cookie_store(true)
                .timeout(cfg.timeout)
                .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
                .danger_accept_invalid_certs(cfg.insecure);
            for c in &ca {
                b = b.add_root_certificate(c.clone());
            }
            let client = b
                .build()
                .map_err(|e| CucmError::Config(format!("HTTP client: {e}")))?;
            nodes.push((base.trim_end_matches('/').to_string(), client));
        }
        Ok(Client {
            nodes,
            current: 0,
            user: cfg.user.clone(),
            password: cfg.password.clone(),
        })
    }

    /// The node address answering now.
    pub fn current(&self) -> &str {
        &self.nodes[self.current].0
    }

    /// POSTs a SOAP request to `path`, starting with the node that answered last and moving
    /// on when a node does not answer. Returns the answer's text and the node address.
    pub async fn call(
        &mut self,
        path: &str,
        action: &str,
        body: &str,
    ) -> Result<(String, String), CucmError> {
        let n = self.nodes.len();
        let mut last = None;
        for k in 0..n {
            let i = (self.current + k) % n;
            match self.call_node(i, path, action, body).await {
                Ok(text) => {
                    if i != self.current {
                        tracing::warn!(from = %self.nodes[self.current].0, to = %self.nodes[i].0, "CUCM node fail-over");
                    }
                    self.current = i;
                    return Ok((text, self.nodes[i].0.clone()));
                }
                Err(e) if e.try_next_node() => {
                    tracing::debug!(error = %e, "node did not answer");
                    last = Some(e);
                }
                Err(e) => {
                    self.current = i;
                    return Err(e);
                }
            }
        }
        Err(last.expect("at least one node"))
    }

    async fn call_node(
        &self,
        i: usize,
        path: &str,
        action: &str,
        body: &str,
    ) -> Result<String, CucmError> {
        let (base, client) = &self.nodes[i];
        let transport = |e: reqwest::Error| CucmError::Transport {
            node: base.clone(),
            reason: error_chain(&e),
        };
        let resp = client
            .post(format!("{base}{path}"))
            .basic_auth(&self.user, Some(&self.password))
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", action)
            .body(body.to_string())
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(transport)?;
        if status == 200 {
            return Ok(text);
        }
        if let Some(f) = soap::fault(&text) {
            return Err(f.into_error(base));
        }
        if status == 401 || status == 403 {
            return Err(CucmError::Auth {
                node: base.clone(),
                status,
            });
        }
        Err(CucmError::Http {
            node: base.clone(),
            status,
            text: text.chars().take(200).collect(),
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
