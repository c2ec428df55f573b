//! The mock's answers at a simulated instant: RisPort70 `selectCmDevice(Ext)` (records per
//! node, stale duplicates, the silent cap, `StateInfo` deltas, `NodeNotResponding`),
//! `selectCtiItem`, AXL `listPhone` and the pools query, PerfMon "Cisco CTI Manager".

use std::collections::HashMap;
use std::fmt::Write;

use callstate_schemas::DeviceType;
use quick_xml::escape::escape;

use crate::model::Rec;
use crate::server::{APP_USER, MockCucm};
use crate::wire::{self, DeviceXml, NodeXml};

impl MockCucm {
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
    pub(crate) fn select(&self, req: &wire::Request, t: i64, ext: bool) -> (String, bool) {
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
    pub(crate) fn cti(&self, req: &wire::Request, t: i64) -> String {
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

    pub(crate) fn list_phone(&self, req: &wire::Request) -> String {
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

    pub(crate) fn pools_sql(&self) -> String {
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

    /// "Cisco CTI Manager" counters of `host` at scenario instant `t`: linked to every
    /// CallManager that is up, one CTI connection while the application's provider is open
    /// there, and then the CTI devices open.
    pub(crate) fn cti_manager_counters(&self, host: usize, t: i64) -> String {
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
