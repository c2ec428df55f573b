//! The mock cluster's HTTP side (axum): RisPort70 (`selectCmDeviceExt`, `selectCmDevice`,
//! `selectCtiItem`) and AXL (`listPhone`, `executeSQLQuery`) answered from the model at the
//! current simulated instant, with CUCM's quirks: HTTP Basic with an HTML 401, a `JSESSIONID`
//! session cookie, the silent per-answer cap, stale duplicate records on nodes a device left,
//! `NodeNotResponding` for nodes that are down, the shared per-minute request budget answered
//! with `Server.RateControl` faults, and faults a test can inject.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use quick_xml::escape::escape;

use callstate_schemas::DeviceType;

use super::model::{CucmModel, Rec};
use super::wire::{self, DeviceXml, NodeXml};

/// The application user whose CTI provider the simulated JTAPI application opens.
pub const APP_USER: &str = "jtapi-callstate";

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
    model: CucmModel,
    opts: MockOptions,
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

    fn device_xml(&self, out: &mut String, i: usize, r: &Rec) {
        let d = &self.model.devices[i];
        let (node, registered, reason, at) = (r.node, r.registered, r.reason, r.at);
        let (class, model) = match d.device_type {
            DeviceType::CtiPort => ("Phone", 72),
            DeviceType::CtiRoutePoint => ("Cti", 73),
            DeviceType::CtiRemoteDevice => ("Phone", 635),
            _ => ("Phone", 592),
        };
        wire::device_item(
            out,
            &DeviceXml {
                name: &d.name,
                class,
                model,
                registered,
                reason,
                timestamp: self.shown(at).div_euclid(1_000_000),
                ip: (d.device_type != DeviceType::CtiRoutePoint)
                    .then(|| format!("10.{}.{}.{}", 40 + node, (i / 250) % 250, i % 250 + 1)),
                description: format!("{} {}", d.pool, d.device_type.as_str()),
            },
        );
    }

    /// A `selectCmDevice(Ext)` answer at scenario instant `t`.
    fn select(&self, req: &wire::Request, t: i64, ext: bool) -> (String, bool) {
        let max = req
            .first("MaxReturnedDevices")
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(1000)
            .min(self.opts.answer_cap);
        let class = req.first("DeviceClass").unwrap_or("Any").trim().to_string();
        let known = state_ids(req.first("StateInfo").unwrap_or(""));
        let mut asked: Vec<usize> = Vec::new();
        for item in req.all("Item") {
            let item = item.trim();
            if let Some(prefix) = item.strip_suffix('*') {
                let p = prefix.to_ascii_lowercase();
                asked.extend(
                    self.model
                        .devices
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| d.name.to_ascii_lowercase().starts_with(&p))
                        .map(|(i, _)| i),
                );
            } else if let Some(&i) = self.model.by_name.get(&item.to_ascii_lowercase()) {
                asked.push(i);
            }
        }
        asked.sort_unstable();
        asked.dedup();
        let dup = self.opts.duplicates || !ext;
        let mut nodes = Vec::new();
        let mut budget = max;
        let mut returned = 0;
        let mut capped = false;
        let mut info = String::from("<StateInfo ClusterWide=\"1\">");
        for (n, name) in self.model.nodes.iter().enumerate() {
            let start = self.model.subsystem_start(n, t);
            if self.model.is_down(n, t) {
                nodes.push(NodeXml {
                    name: name.clone(),
                    code: "NodeNotResponding",
                    no_change: false,
                    devices: String::new(),
                });
                continue;
            }
            let mut recs = Vec::new();
            for &i in &asked {
                let d = &self.model.devices[i];
                let cur = d.current(t);
                let rec = match cur {
                    Some(c) if c.node == n => Some(*c),
                    Some(_) if dup => d.on_node(n, t).copied(),
                    _ => None,
                };
                if let Some(r) = rec {
                    let dclass = if d.device_type == DeviceType::CtiRoutePoint {
                        "Cti"
                    } else {
                        "Phone"
                    };
                    if class == "Any" || class.eq_ignore_ascii_case(dclass) {
                        recs.push((i, r));
                    }
                }
            }
            let found = recs.len();
            let changed = match known.get(name.as_str()) {
                Some(&since) if start.to_string() == known_start(req, name) => {
                    recs.iter().any(|(_, r)| r.at > since)
                }
                _ => true,
            };
            let mut devices = String::new();
            let mut sent = 0;
            if changed {
                for (i, r) in recs {
                    if budget == 0 {
                        capped = true;
                        break;
                    }
                    budget -= 1;
                    sent += 1;
                    self.device_xml(&mut devices, i, &r);
                }
            }
            returned += sent;
            let _ = write!(
                info,
                "<Node Name=\"{}\" SubsystemStartTime=\"{start}\" StateId=\"{t}\" TotalItemsFound=\"{found}\" TotalItemsReturned=\"{sent}\"/>",
                escape(name)
            );
            nodes.push(NodeXml {
                name: name.clone(),
                code: "Ok",
                no_change: !changed,
                devices,
            });
        }
        info.push_str("</StateInfo>");
        (wire::select_answer(returned, &nodes, &info), capped)
    }

    /// A `selectCtiItem` answer (providers of [`APP_USER`]) at scenario instant `t`.
    fn cti(&self, req: &wire::Request, t: i64) -> String {
        let users: Vec<String> = req
            .all("AppItem")
            .iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        let watched = users.is_empty() || users.iter().any(|u| u == APP_USER);
        let mut b = String::from(
            "<ns1:selectCtiItemResponse xmlns:ns1=\"http://schemas.cisco.com/ast/soap\"><ns1:selectCtiItemReturn><ns1:SelectCtiItemResult>",
        );
        let mut items = String::new();
        let mut total = 0;
        for (n, name) in self.model.nodes.iter().enumerate() {
            if self.model.is_down(n, t) {
                let _ = write!(
                    items,
                    "<ns1:item><ns1:ReturnCode>NodeNotResponding</ns1:ReturnCode><ns1:Name>{}</ns1:Name><ns1:NoChange>false</ns1:NoChange><ns1:CtiItems/></ns1:item>",
                    escape(name)
                );
                continue;
            }
            let mut node_items = String::new();
            if let (true, Some((open, since))) = (watched, self.model.provider(name, t)) {
                total += 1;
                let _ = write!(
                    node_items,
                    "<ns1:item><ns1:AppId>callstate-bridge</ns1:AppId><ns1:UserId>{APP_USER}</ns1:UserId><ns1:AppIpAddr>10.40.0.50</ns1:AppIpAddr>\
<ns1:AppIpv6Addr/><ns1:AppStatus>{}</ns1:AppStatus><ns1:AppStatusReason>{}</ns1:AppStatusReason><ns1:AppTimeStamp>{}</ns1:AppTimeStamp>\
<ns1:CtiDevice xsi:nil=\"true\"/><ns1:CtiLine xsi:nil=\"true\"/></ns1:item>",
                    if open { "Open" } else { "Closed" },
                    if open { 0 } else { 2 },
                    self.shown(since).div_euclid(1_000_000)
                );
            }
            let _ = write!(
                items,
                "<ns1:item><ns1:ReturnCode>Ok</ns1:ReturnCode><ns1:Name>{}</ns1:Name><ns1:NoChange>false</ns1:NoChange>{}</ns1:item>",
                escape(name),
                if node_items.is_empty() {
                    "<ns1:CtiItems/>".to_string()
                } else {
                    format!("<ns1:CtiItems>{node_items}</ns1:CtiItems>")
                }
            );
        }
        let _ = write!(
            b,
            "<ns1:TotalItemsFound>{total}</ns1:TotalItemsFound><ns1:CtiNodes>{items}</ns1:CtiNodes></ns1:SelectCtiItemResult><ns1:StateInfo/></ns1:selectCtiItemReturn></ns1:selectCtiItemResponse>"
        );
        wire::envelope(&b)
    }

    fn list_phone(&self, req: &wire::Request) -> String {
        let pattern = req.first("name").unwrap_or("%").trim().to_ascii_lowercase();
        let skip = req
            .first("skip")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0usize);
        let first = req
            .first("first")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(usize::MAX);
        let matches = |name: &str| match pattern.strip_suffix('%') {
            Some(p) => name.to_ascii_lowercase().starts_with(p),
            None => name.eq_ignore_ascii_case(&pattern),
        };
        let mut b = String::from(
            "<ns:listPhoneResponse xmlns:ns=\"http://www.cisco.com/AXL/API/14.0\"><return>",
        );
        for (i, d) in self
            .model
            .devices
            .iter()
            .filter(|d| matches(&d.name))
            .enumerate()
            .skip(skip)
            .take(first)
        {
            let (product, class) = match d.device_type {
                DeviceType::CtiPort => ("CTI Port", "Phone"),
                DeviceType::CtiRoutePoint => ("CTI Route Point", "CTI Route Point"),
                DeviceType::CtiRemoteDevice => ("CTI Remote Device", "Phone"),
                _ => ("Cisco 8845", "Phone"),
            };
            let _ = write!(
                b,
                "<phone uuid=\"{{{i:08X}-0000-4000-8000-000000000000}}\"><name>{}</name><product>{product}</product><model>{product}</model>\
<class>{class}</class><devicePoolName uuid=\"{{POOL}}\">{}</devicePoolName></phone>",
                escape(&d.name),
                escape(&d.pool)
            );
        }
        b.push_str("</return></ns:listPhoneResponse>");
        wire::envelope(&b)
    }

    fn pools_sql(&self) -> String {
        let mut b = String::from(
            "<ns:executeSQLQueryResponse xmlns:ns=\"http://www.cisco.com/AXL/API/14.0\"><return>",
        );
        for (pool, nodes) in &self.model.pools {
            for (k, n) in nodes.iter().enumerate() {
                let _ = write!(
                    b,
                    "<row><pool>{}</pool><node>{}</node><priority>{}</priority></row>",
                    escape(pool),
                    escape(n),
                    k + 1
                );
            }
        }
        b.push_str("</return></ns:executeSQLQueryResponse>");
        wire::envelope(&b)
    }
}

impl MockCucm {
    /// "Cisco CTI Manager" counters of `host` at scenario instant `t`: linked to every
    /// CallManager that is up, one CTI connection while the application's provider is open
    /// there, and then the CTI devices open.
    fn cti_manager_counters(&self, host: usize, t: i64) -> String {
        let name = &self.model.nodes[host];
        let links = (0..self.model.nodes.len())
            .filter(|&n| !self.model.is_down(n, t))
            .count();
        let open = self.model.provider(name, t).is_some_and(|(open, _)| open);
        let devices = if open {
            self.model
                .devices
                .iter()
                .filter(|d| {
                    matches!(
                        d.device_type,
                        DeviceType::CtiPort
                            | DeviceType::CtiRoutePoint
                            | DeviceType::CtiRemoteDevice
                    )
                })
                .count()
        } else {
            0
        };
        let mut b = String::from(
            "<ns1:perfmonCollectCounterDataResponse xmlns:ns1=\"http://schemas.cisco.com/ast/soap\"><ns1:ArrayOfCounterInfo>",
        );
        for (counter, value) in [
            ("CcmLinkActive", links),
            ("CTIConnectionActive", usize::from(open)),
            ("DevicesOpen", devices),
            ("LinesOpen", devices),
            ("QbeVersion", 0),
        ] {
            let _ = write!(
                b,
                "<ns1:item><ns1:Name>\\\\{}\\Cisco CTI Manager\\{counter}</ns1:Name><ns1:Value>{value}</ns1:Value><ns1:CStatus>1</ns1:CStatus></ns1:item>",
                escape(name)
            );
        }
        b.push_str("</ns1:ArrayOfCounterInfo></ns1:perfmonCollectCounterDataResponse>");
        wire::envelope(&b)
    }
}

/// `Node Name → StateId` of a StateInfo sent back by a client.
fn state_ids(info: &str) -> HashMap<String, i64> {
    node_attrs(info)
        .into_iter()
        .filter_map(|a| Some((a.get("Name")?.clone(), a.get("StateId")?.parse().ok()?)))
        .collect()
}

fn known_start(req: &wire::Request, node: &str) -> String {
    node_attrs(req.first("StateInfo").unwrap_or(""))
        .into_iter()
        .find(|a| a.get("Name").map(String::as_str) == Some(node))
        .and_then(|a| a.get("SubsystemStartTime").cloned())
        .unwrap_or_default()
}

fn node_attrs(info: &str) -> Vec<HashMap<String, String>> {
    let mut r = quick_xml::Reader::from_str(info);
    let mut out = Vec::new();
    loop {
        match r.read_event() {
            Ok(quick_xml::events::Event::Empty(e) | quick_xml::events::Event::Start(e))
                if e.local_name().as_ref() == b"Node" =>
            {
                out.push(
                    e.attributes()
                        .flatten()
                        .filter_map(|a| {
                            Some((
                                String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned(),
                                a.unescape_value().ok()?.into_owned(),
                            ))
                        })
                        .collect(),
                );
            }
            Ok(quick_xml::events::Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out
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

async fn risport_handler(
    State((m, node)): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let t = m.scenario_now();
    if node.is_some_and(|n| m.model.is_down(n, t)) {
        return unavailable();
    }
    let cookie = match m.authenticate(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let text = String::from_utf8_lossy(&body);
    let Some(req) = wire::read_request(&text) else {
        return xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            wire::client_fault("not a SOAP request"),
            cookie,
        );
    };
    let host = node.map_or_else(|| m.model.nodes[0].clone(), |n| m.model.nodes[n].clone());
    let injected = {
        let mut inner = m.lock();
        *inner.stats.requests.entry(req.op.clone()).or_insert(0) += 1;
        inner.inject.pop_front()
    };
    match injected {
        Some(Inject::RateControl) => {
            let mut inner = m.lock();
            inner.stats.rate_faults += 1;
            inner.stats.log(m.shown(t), &req.op, false);
            drop(inner);
            return xml(
                StatusCode::INTERNAL_SERVER_ERROR,
                wire::rate_fault(&req.op, m.opts.rate_per_minute, &host),
                cookie,
            );
        }
        Some(Inject::RateControlOk) => {
            let mut inner = m.lock();
            inner.stats.rate_faults += 1;
            inner.stats.log(m.shown(t), &req.op, false);
            drop(inner);
            return xml(
                StatusCode::OK,
                wire::rate_fault(&req.op, m.opts.rate_per_minute, &host),
                cookie,
            );
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
            inner.stats.log(m.shown(t), &req.op, false);
            drop(inner);
            return xml(
                StatusCode::INTERNAL_SERVER_ERROR,
                wire::rate_fault(&req.op, m.opts.rate_per_minute, &host),
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
    if node.is_some_and(|n| m.model.is_down(n, m.scenario_now())) {
        return unavailable();
    }
    let cookie = match m.authenticate(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let text = String::from_utf8_lossy(&body);
    let Some(req) = wire::read_request(&text) else {
        return xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            wire::client_fault("not a SOAP request"),
            cookie,
        );
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
    let t = m.scenario_now();
    if node.is_some_and(|n| m.model.is_down(n, t)) {
        return unavailable();
    }
    let cookie = match m.authenticate(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let text = String::from_utf8_lossy(&body);
    let Some(req) = wire::read_request(&text) else {
        return xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            wire::client_fault("not a SOAP request"),
            cookie,
        );
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
