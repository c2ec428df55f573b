//! The mock cluster's HTTP side (axum): RisPort70 (`selectCmDeviceExt`, `selectCmDevice`,
//! `selectCtiItem`) and AXL (`listPhone`, `executeSQLQuery`) answered from the model at the
//! current simulated instant, with CUCM's quirks: HTTP Basic with an HTML 401, a `JSESSIONID`
//! session cookie, the silent per-answer cap, stale duplicate records on nodes a device left,
//! `NodeNotResponding` for nodes that are down, the shared per-minute request budget answered
//! with `Server.RateControl` faults, and faults a test can inject.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};

use crate::model::CucmModel;
use crate::wire;

pub use crate::model::APP_USER;

/// How the mock behaves.
#[derive(Debug, Clone)]
pub struct MockOptions {
    /// Accepted user.
    pub user: String,
    /// Its password.
    pub password: String,
    /// Records per answer at most, truncated silently (CUCM: 1000).
    pub answer_cap: usize,
    /// RisPort requests per minute over the whole cluster (CUCM default: 15).
    pub rate_per_minute: u32,
    /// Also return the stale `UnRegistered` records of nodes a device has left.
    pub duplicates: bool,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            user: "callstate-ris".into(),
            password: "secret".into(),
            answer_cap: 1000,
            rate_per_minute: 15,
            duplicates: true,
        }
    }
}

/// A fault a test makes the next RisPort request get.
#[derive(Debug, Clone, PartialEq)]
pub enum Inject {
    /// `Server.RateControl` with HTTP 500.
    RateControl,
    /// `Server.RateControl` with HTTP 200 (seen in reports).
    RateControlOk,
    /// An HTML error page with HTTP 500 (Tomcat).
    Html500,
    /// HTTP 503 (a node whose services are stopping).
    Unavailable,
    /// An answer cut in the middle.
    Truncated,
}

/// What the mock was asked and answered.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MockStats {
    /// Requests per operation.
    pub requests: BTreeMap<String, u64>,
    /// RisPort requests answered (not faults).
    pub risport_answered: u64,
    /// Rate faults given.
    pub rate_faults: u64,
    /// Refused credentials.
    pub auth_failures: u64,
    /// Logins with HTTP Basic (a new session).
    pub logins: u64,
    /// Requests on an existing session cookie.
    pub session_reuses: u64,
    /// Most RisPort requests in any 60 s.
    pub max_per_minute: usize,
    /// Answers cut at the cap.
    pub capped_answers: u64,
    /// The last RisPort requests (at most 1000): shown time (µs), operation, whether it was
    /// answered (`false`: a fault).
    #[serde(skip)]
    pub recent: VecDeque<(i64, String, bool)>,
}

impl MockStats {
    fn log(&mut self, t: i64, op: &str, answered: bool) {
        if self.recent.len() == 1000 {
            self.recent.pop_front();
        }
        self.recent.push_back((t, op.to_string(), answered));
    }
}

struct Inner {
    recent: VecDeque<i64>,
    sessions: HashSet<String>,
    inject: VecDeque<Inject>,
    stats: MockStats,
    next_session: u64,
}

/// Tells the time (the simulated cluster's "now", in the shifted frame).
pub type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// A mock CUCM cluster.
pub struct MockCucm {
    pub(crate) model: CucmModel,
    pub(crate) opts: MockOptions,
    now: Now,
    shift_us: i64,
    inner: Mutex<Inner>,
}

const MINUTE: i64 = 60_000_000;

impl MockCucm {
    /// A mock of `model` whose scenario start is shown as `origin`; `now` tells the time in
    /// that frame (the same clock the poller uses in tests).
    pub fn new(
        model: CucmModel,
        opts: MockOptions,
        origin: DateTime<Utc>,
        now: Now,
    ) -> Arc<MockCucm> {
        let shift_us = origin.timestamp_micros() - model.start;
        Arc::new(MockCucm {
            model,
            opts,
            now,
            shift_us,
            inner: Mutex::new(Inner {
                recent: VecDeque::new(),
                sessions: HashSet::new(),
                inject: VecDeque::new(),
                stats: MockStats::default(),
                next_session: 1,
            }),
        })
    }

    /// The model.
    pub fn model(&self) -> &CucmModel {
        &self.model
    }

    /// The scenario instant now (µs).
    pub fn scenario_now(&self) -> i64 {
        (self.now)().timestamp_micros() - self.shift_us
    }

    /// Shown time (µs) of a scenario instant.
    pub fn shown(&self, t: i64) -> i64 {
        t + self.shift_us
    }

    /// Makes the next RisPort request fail this way.
    pub fn inject(&self, f: Inject) {
        self.lock().inject.push_back(f);
    }

    /// What happened so far.
    pub fn stats(&self) -> MockStats {
        self.lock().stats.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The HTTP routes; `as_node` makes this listener one node's Tomcat (unreachable while
    /// that node is down), `None` an address that always answers for the cluster.
    pub fn router(self: &Arc<Self>, as_node: Option<&str>) -> Router {
        let node = as_node.and_then(|n| self.model.nodes.iter().position(|x| x == n));
        Router::new()
            .route(
                "/realtimeservice2/services/RISService70",
                post(risport_handler),
            )
            .route("/axl/", post(axl_handler))
            .route(
                "/perfmonservice2/services/PerfmonService",
                post(perfmon_handler),
            )
            .with_state((self.clone(), node))
    }

    /// Checks credentials; on success the session cookie to set (if a new session).
    fn authenticate(&self, headers: &HeaderMap) -> Result<Option<String>, Box<Response>> {
        let mut inner = self.lock();
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix("JSESSIONID="))
            .find(|id| inner.sessions.contains(*id))
            .map(str::to_string);
        if cookie.is_some() {
            inner.stats.session_reuses += 1;
            return Ok(None);
        }
        let ok = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64_decode(b.trim()))
            .is_some_and(|up| up == format!("{}:{}", self.opts.user, self.opts.password));
        if !ok {
            inner.stats.auth_failures += 1;
            let mut r = (
                StatusCode::UNAUTHORIZED,
                "<html><head><title>Apache Tomcat - Error report</title></head><body><h1>HTTP Status 401 - </h1>\
<p><b>type</b> Status report</p><p><b>description</b> This request requires HTTP authentication.</p></body></html>",
            )
                .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Cisco Realtime Service\""),
            );
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html;charset=utf-8"),
            );
            return Err(Box::new(r));
        }
        inner.stats.logins += 1;
        let id = format!(
            "{:032X}",
            inner.next_session.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        );
        inner.next_session += 1;
        inner.sessions.insert(id.clone());
        Ok(Some(id))
    }
}

fn xml(status: StatusCode, body: String, cookie: Option<String>) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml;charset=utf-8"),
    );
    if let Some(id) = cookie
        && let Ok(v) = HeaderValue::from_str(&format!("JSESSIONID={id}; Path=/; HttpOnly"))
    {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/html")],
        "<html><body><h1>HTTP Status 503 - Service Unavailable</h1></body></html>",
    )
        .into_response()
}

type AppState = (Arc<MockCucm>, Option<usize>);

/// RisPort's rate fault with `status`, logged as a refused request.
fn rate_fault(
    m: &MockCucm,
    t: i64,
    op: &str,
    host: &str,
    status: StatusCode,
    cookie: Option<String>,
) -> Response {
    m.lock().stats.log(m.shown(t), op, false);
    xml(
        status,
        wire::rate_fault(op, m.opts.rate_per_minute, host),
        cookie,
    )
}

/// What every operation does first: a node that is down does not answer, credentials are
/// checked (or the session cookie), the body must be a SOAP request. The instant, the cookie
/// to set and the request; or the answer to give instead.
fn admit(
    m: &MockCucm,
    node: Option<usize>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(i64, Option<String>, wire::Request), Box<Response>> {
    let t = m.scenario_now();
    if node.is_some_and(|n| m.model.is_down(n, t)) {
        return Err(Box::new(unavailable()));
    }
    let cookie = m.authenticate(headers)?;
    match wire::read_request(&String::from_utf8_lossy(body)) {
        Some(req) => Ok((t, cookie, req)),
        None => Err(Box::new(xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            wire::client_fault("not a SOAP request"),
            cookie,
        ))),
    }
}

async fn risport_handler(
    State((m, node)): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (t, cookie, req) = match admit(&m, node, &headers, &body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let host = node.map_or_else(|| m.model.nodes[0].clone(), |n| m.model.nodes[n].clone());
    let injected = {
        let mut inner = m.lock();
        *inner.stats.requests.entry(req.op.clone()).or_insert(0) += 1;
        inner.inject.pop_front()
    };
    match injected {
        Some(Inject::RateControl) => {
            m.lock().stats.rate_faults += 1;
            return rate_fault(
                &m,
                t,
                &req.op,
                &host,
                StatusCode::INTERNAL_SERVER_ERROR,
                cookie,
            );
        }
        Some(Inject::RateControlOk) => {
            m.lock().stats.rate_faults += 1;
            return rate_fault(&m, t, &req.op, &host, StatusCode::OK, cookie);
        }
        Some(Inject::Html500) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body><h1>HTTP Status 500 - Internal Server Error</h1></body></html>",
            )
                .into_response();
        }
        Some(Inject::Unavailable) => return unavailable(),
        Some(Inject::Truncated) | None => {}
    }
    {
        let mut inner = m.lock();
        while inner.recent.front().is_some_and(|&x| x <= t - MINUTE) {
            inner.recent.pop_front();
        }
        if inner.recent.len() >= m.opts.rate_per_minute as usize {
            inner.stats.rate_faults += 1;
            drop(inner);
            return rate_fault(
                &m,
                t,
                &req.op,
                &host,
                StatusCode::INTERNAL_SERVER_ERROR,
                cookie,
            );
        }
        inner.recent.push_back(t);
        inner.stats.max_per_minute = inner.stats.max_per_minute.max(inner.recent.len());
        inner.stats.risport_answered += 1;
        inner.stats.log(m.shown(t), &req.op, true);
    }
    let mut answer = match req.op.as_str() {
        "selectCmDeviceExt" => {
            let (a, capped) = m.select(&req, t, true);
            if capped {
                m.lock().stats.capped_answers += 1;
            }
            a
        }
        "selectCmDevice" => m.select(&req, t, false).0,
        "selectCtiItem" => m.cti(&req, t),
        op => {
            return xml(
                StatusCode::INTERNAL_SERVER_ERROR,
                wire::client_fault(&format!("No such operation '{op}'")),
                cookie,
            );
        }
    };
    if injected == Some(Inject::Truncated) {
        answer.truncate(answer.len() / 2);
    }
    xml(StatusCode::OK, answer, cookie)
}

async fn axl_handler(
    State((m, node)): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, cookie, req) = match admit(&m, node, &headers, &body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    *m.lock().stats.requests.entry(req.op.clone()).or_insert(0) += 1;
    match req.op.as_str() {
        "listPhone" => xml(StatusCode::OK, m.list_phone(&req), cookie),
        "executeSQLQuery"
            if req
                .first("sql")
                .is_some_and(|s| s.contains("callmanagergroupmember")) =>
        {
            xml(StatusCode::OK, m.pools_sql(), cookie)
        }
        "executeSQLQuery" => xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            wire::client_fault("the mock answers only the device pool query of docs/cucm.md"),
            cookie,
        ),
        op => xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            wire::client_fault(&format!("No such operation '{op}'")),
            cookie,
        ),
    }
}

async fn perfmon_handler(
    State((m, node)): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (t, cookie, req) = match admit(&m, node, &headers, &body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    *m.lock().stats.requests.entry(req.op.clone()).or_insert(0) += 1;
    if req.op != "perfmonCollectCounterData" {
        return xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            wire::client_fault(&format!("No such operation '{}'", req.op)),
            cookie,
        );
    }
    let host = req.first("Host").unwrap_or("").trim();
    let Some(h) = m
        .model
        .nodes
        .iter()
        .position(|n| n.eq_ignore_ascii_case(host))
    else {
        return xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            wire::client_fault(&format!("Host {host} is not in this cluster")),
            cookie,
        );
    };
    if m.model.is_down(h, t) {
        return xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            wire::client_fault(&format!("Host {host} is not reachable")),
            cookie,
        );
    }
    if req.first("Object").map(str::trim) != Some("Cisco CTI Manager") {
        return xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            wire::client_fault("the mock serves only the Cisco CTI Manager object"),
            cookie,
        );
    }
    xml(StatusCode::OK, m.cti_manager_counters(h, t), cookie)
}

/// The `user:password` of an HTTP Basic credential.
fn base64_decode(s: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    String::from_utf8(bytes).ok()
}
