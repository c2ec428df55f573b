//! RisPort70 `selectCmDeviceExt`: the request (`cucm-sources.md` §1.3) and its answer (§1.4),
//! read by local name, tolerant of `xsi:nil`, missing elements and child order.

use serde::Deserialize;

use crate::error::CucmError;
use crate::soap::{self, Items, esc, xml_bool, xml_u32};

/// The RisPort70 service path.
pub const PATH: &str = "/realtimeservice2/services/RISService70";
/// RisPort's namespace.
pub const NS: &str = "http://schemas.cisco.com/ast/soap";

/// A `selectCmDeviceExt` request for `names` (one `item/Item` each), with the previous
/// answer's `state_info` (empty for a full poll).
pub fn select_cm_device_ext(state_info: &str, names: &[&str], device_class: &str) -> String {
    let mut items = String::with_capacity(names.len() * 48);
    for n in names {
        items.push_str("<soap:item><soap:Item>");
        items.push_str(&esc(n));
        items.push_str("</soap:Item></soap:item>");
    }
    let body = format!(
        "<soap:selectCmDeviceExt><soap:StateInfo>{}</soap:StateInfo><soap:CmSelectionCriteria>\
<soap:MaxReturnedDevices>{}</soap:MaxReturnedDevices><soap:DeviceClass>{}</soap:DeviceClass>\
<soap:Model>255</soap:Model><soap:Status>Any</soap:Status><soap:NodeName></soap:NodeName>\
<soap:SelectBy>Name</soap:SelectBy><soap:SelectItems>{items}</soap:SelectItems>\
<soap:Protocol>Any</soap:Protocol><soap:DownloadStatus>Any</soap:DownloadStatus>\
</soap:CmSelectionCriteria></soap:selectCmDeviceExt>",
        esc(state_info),
        names.len(),
        esc(device_class),
    );
    soap::envelope(&format!("xmlns:soap=\"{NS}\""), &body)
}

/// Registration status (`CmDevRegStat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegStatus {
    /// `Registered`.
    Registered,
    /// `PartiallyRegistered`: counted as in service, marked `partial`.
    PartiallyRegistered,
    /// `UnRegistered`.
    UnRegistered,
    /// `Rejected`.
    Rejected,
    /// `Unknown`, `Any` or anything else: no event.
    Unknown,
}

impl RegStatus {
    fn parse(s: &str) -> RegStatus {
        match s.trim() {
            "Registered" => RegStatus::Registered,
            "PartiallyRegistered" => RegStatus::PartiallyRegistered,
            "UnRegistered" => RegStatus::UnRegistered,
            "Rejected" => RegStatus::Rejected,
            _ => RegStatus::Unknown,
        }
    }

    /// In service (`Some(true)`), out of service (`Some(false)`), or says nothing.
    pub fn in_service(self) -> Option<bool> {
        match self {
            RegStatus::Registered | RegStatus::PartiallyRegistered => Some(true),
            RegStatus::UnRegistered | RegStatus::Rejected => Some(false),
            RegStatus::Unknown => None,
        }
    }
}

/// One device record of a node's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    /// Device name, as returned.
    pub name: String,
    /// `DeviceClass`.
    pub class: String,
    /// `Model` (255 unknown, 72 CTI port, 73 CTI route point).
    pub model: Option<u32>,
    /// Registration status.
    pub status: RegStatus,
    /// `StatusReason` (§0.1), 0 when absent.
    pub reason: u32,
    /// `TimeStamp`, epoch seconds.
    pub timestamp: Option<u32>,
    /// `Protocol`.
    pub protocol: Option<String>,
    /// First `IPAddress/item/IP`.
    pub ip: Option<String>,
    /// `LoginUserId`.
    pub login_user: Option<String>,
    /// `ActiveLoadID`.
    pub load: Option<String>,
    /// `Description`.
    pub description: Option<String>,
}

/// One node's part of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeAnswer {
    /// `CmNode/Name`.
    pub name: String,
    /// `ReturnCode`: `Ok`, `NotFound`, `NodeNotResponding`, …
    pub return_code: String,
    /// `NoChange` (delta polls).
    pub no_change: bool,
    /// Its device records.
    pub devices: Vec<DeviceRecord>,
}

impl NodeAnswer {
    /// `Ok` or `NotFound`: the node's part of the picture is there.
    pub fn answered(&self) -> bool {
        matches!(self.return_code.as_str(), "Ok" | "NotFound")
    }
}

/// A `selectCmDevice(Ext)` answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SelectAnswer {
    /// `TotalDevicesFound`.
    pub total_found: Option<u32>,
    /// Per node.
    pub nodes: Vec<NodeAnswer>,
    /// The opaque `StateInfo` to send back.
    pub state_info: String,
}

impl SelectAnswer {
    /// Device records over all nodes.
    pub fn records(&self) -> usize {
        self.nodes.iter().map(|n| n.devices.len()).sum()
    }
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "selectCmDeviceResponse", alias = "selectCmDeviceExtResponse")]
    response: Option<Response>,
}

#[derive(Deserialize)]
struct Response {
    #[serde(rename = "selectCmDeviceReturn")]
    ret: Return,
}

#[derive(Deserialize)]
struct Return {
    #[serde(rename = "SelectCmDeviceResult")]
    result: Option<ResultXml>,
    #[serde(rename = "StateInfo")]
    state_info: Option<String>,
}

#[derive(Deserialize)]
struct ResultXml {
    #[serde(rename = "TotalDevicesFound")]
    total: Option<String>,
    #[serde(rename = "CmNodes")]
    nodes: Option<Items<CmNode>>,
}

#[derive(Deserialize)]
struct CmNode {
    #[serde(rename = "ReturnCode")]
    return_code: Option<String>,
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "NoChange")]
    no_change: Option<String>,
    #[serde(rename = "CmDevices")]
    devices: Option<Items<CmDevice>>,
}

#[derive(Deserialize)]
struct CmDevice {
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "DeviceClass")]
    class: Option<String>,
    #[serde(rename = "Model")]
    model: Option<String>,
    #[serde(rename = "Status")]
    status: Option<String>,
    #[serde(rename = "StatusReason")]
    reason: Option<String>,
    #[serde(rename = "TimeStamp")]
    timestamp: Option<String>,
    #[serde(rename = "Protocol")]
    protocol: Option<String>,
    #[serde(rename = "LoginUserId")]
    login_user: Option<String>,
    #[serde(rename = "ActiveLoadID")]
    load: Option<String>,
    #[serde(rename = "Description")]
    description: Option<String>,
    #[serde(rename = "IPAddress")]
    ip: Option<Items<IpItem>>,
}

#[derive(Deserialize)]
struct IpItem {
    #[serde(rename = "IP")]
    ip: Option<String>,
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Reads a `selectCmDevice(Ext)` answer; a SOAP fault comes back as its error.
pub fn parse(xml: &str, node: &str) -> Result<SelectAnswer, CucmError> {
    if let Some(f) = soap::fault(xml) {
        return Err(f.into_error(node));
    }
    let body: Body = soap::body(xml)?;
    let ret = body
        .response
        .ok_or_else(|| CucmError::Wire("no selectCmDeviceResponse in the answer".into()))?
        .ret;
    let mut out = SelectAnswer {
        state_info: ret.state_info.unwrap_or_default(),
        ..SelectAnswer::default()
    };
    let Some(result) = ret.result else {
        return Ok(out);
    };
    out.total_found = xml_u32(result.total.as_deref());
    for n in result.nodes.unwrap_or_default().items {
        let mut devices = Vec::new();
        for d in n.devices.unwrap_or_default().items {
            let Some(name) = nonempty(d.name) else {
                continue;
            };
            devices.push(DeviceRecord {
                name,
                class: d.class.unwrap_or_default().trim().to_string(),
                model: xml_u32(d.model.as_deref()),
                status: RegStatus::parse(d.status.as_deref().unwrap_or("")),
                reason: xml_u32(d.reason.as_deref()).unwrap_or(0),
                timestamp: xml_u32(d.timestamp.as_deref()),
                protocol: nonempty(d.protocol),
                ip: d
                    .ip
                    .unwrap_or_default()
                    .items
                    .into_iter()
                    .filter_map(|i| nonempty(i.ip))
                    .find(|ip| ip != "0.0.0.0" && !ip.chars().all(|c| c == '0' || c == ':')),
                login_user: nonempty(d.login_user),
                load: nonempty(d.load),
                description: nonempty(d.description),
            });
        }
        out.nodes.push(NodeAnswer {
            name: n.name.unwrap_or_default().trim().to_string(),
            return_code: n.return_code.unwrap_or_default().trim().to_string(),
            no_change: xml_bool(n.no_change.as_deref()),
            devices,
        });
    }
    Ok(out)
}

/// `(node, SubsystemStartTime)` pairs readable from a `StateInfo` text (opaque to Cisco; read
/// only to notice a node restart, never relied upon).
pub fn subsystem_starts(state_info: &str) -> Vec<(String, String)> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(state_info);
    let mut out = Vec::new();
    loop {
        match r.read_event() {
            Ok(Event::Empty(e) | Event::Start(e)) if e.local_name().as_ref() == b"Node" => {
                let mut name = None;
                let mut start = None;
                for a in e.attributes().flatten() {
                    let v = a.unescape_value().map(|v| v.into_owned()).ok();
                    match a.key.local_name().as_ref() {
                        b"Name" => name = v,
                        b"SubsystemStartTime" => start = v,
                        _ => {}
                    }
                }
                if let (Some(n), Some(s)) = (name, start) {
                    out.push((n, s));
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer of `cucm-sources.md` §1.4, verbatim.
    const ANSWER: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <ns1:selectCmDeviceResponse xmlns:ns1="http://schemas.cisco.com/ast/soap">
   <ns1:selectCmDeviceReturn>
    <ns1:SelectCmDeviceResult>
     <ns1:TotalDevicesFound>1</ns1:TotalDevicesFound>
     <ns1:CmNodes>
      <ns1:item>
       <ns1:ReturnCode>Ok</ns1:ReturnCode><ns1:Name>ucm-a2</ns1:Name><ns1:NoChange>false</ns1:NoChange>
       <ns1:CmDevices>
        <ns1:item>
         <ns1:Name>SEP00CAFE000101</ns1:Name><ns1:DirNumber>4101-Registered</ns1:DirNumber><ns1:DeviceClass>Phone</ns1:DeviceClass>
         <ns1:Model>592</ns1:Model><ns1:Product>592</ns1:Product><ns1:BoxProduct>0</ns1:BoxProduct><ns1:Httpd>Yes</ns1:Httpd>
         <ns1:RegistrationAttempts>0</ns1:RegistrationAttempts><ns1:IsCtiControllable>true</ns1:IsCtiControllable>
         <ns1:LoginUserId xsi:nil="true"/><ns1:Status>Registered</ns1:Status><ns1:StatusReason>0</ns1:StatusReason>
         <ns1:PerfMonObject>2</ns1:PerfMonObject><ns1:DChannel>0</ns1:DChannel><ns1:Description>Helpdesk 4101</ns1:Description>
         <ns1:H323Trunk/><ns1:TimeStamp>1793611140</ns1:TimeStamp><ns1:Protocol>SIP</ns1:Protocol><ns1:NumOfLines>1</ns1:NumOfLines>
         <ns1:LinesStatus><ns1:item><ns1:DirectoryNumber>4101</ns1:DirectoryNumber><ns1:Status>Registered</ns1:Status></ns1:item></ns1:LinesStatus>
         <ns1:ActiveLoadID>sip-load-14.3.1</ns1:ActiveLoadID><ns1:InactiveLoadID/><ns1:DownloadStatus>Successful</ns1:DownloadStatus>
         <ns1:DownloadFailureReason/><ns1:DownloadServer/>
         <ns1:IPAddress><ns1:item><ns1:IP>10.40.1.21</ns1:IP><ns1:IPAddrType>ipv4</ns1:IPAddrType><ns1:Attribute>Unknown</ns1:Attribute></ns1:item></ns1:IPAddress>
        </ns1:item>
       </ns1:CmDevices></ns1:item>
      <ns1:item><ns1:ReturnCode>Ok</ns1:ReturnCode><ns1:Name>ucm-a1</ns1:Name><ns1:NoChange>false</ns1:NoChange><ns1:CmDevices/></ns1:item>
     </ns1:CmNodes>
    </ns1:SelectCmDeviceResult><ns1:StateInfo>&lt;StateInfo ClusterWide="1"&gt;&lt;Node Name="ucm-a2" SubsystemStartTime="1793500000" StateId="41" TotalItemsFound="1" TotalItemsReturned="1"/&gt;&lt;/StateInfo&gt;</ns1:StateInfo>
   </ns1:selectCmDeviceReturn></ns1:selectCmDeviceResponse>
 </soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn the_documented_answer_reads() {
        let a = parse(ANSWER, "n").unwrap();
        assert_eq!(a.total_found, Some(1));
        assert_eq!(a.nodes.len(), 2);
        let d = &a.nodes[0].devices[0];
        assert_eq!(a.nodes[0].name, "ucm-a2");
        assert_eq!(d.name, "SEP00CAFE000101");
        assert_eq!(d.status, RegStatus::Registered);
        assert_eq!(d.timestamp, Some(1_793_611_140));
        assert_eq!(d.model, Some(592));
        assert_eq!(d.ip.as_deref(), Some("10.40.1.21"));
        assert_eq!(d.login_user, None);
        assert!(a.nodes[1].devices.is_empty() && a.nodes[1].answered());
        assert!(a.state_info.starts_with("<StateInfo ClusterWide=\"1\">"));
        assert_eq!(
            subsystem_starts(&a.state_info),
            vec![("ucm-a2".to_string(), "1793500000".to_string())]
        );
    }

    #[test]
    fn the_empty_answer_and_the_ext_element_read() {
        // the one answer seen verbatim: nil CmNodes, empty StateInfo (xsi:nil="1")
        let xml = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><ns1:selectCmDeviceExtResponse xmlns:ns1="http://schemas.cisco.com/ast/soap"><ns1:selectCmDeviceReturn><ns1:SelectCmDeviceResult><ns1:TotalDevicesFound>0</ns1:TotalDevicesFound><ns1:CmNodes xsi:nil="1"/></ns1:SelectCmDeviceResult><ns1:StateInfo></ns1:StateInfo></ns1:selectCmDeviceReturn></ns1:selectCmDeviceExtResponse></soapenv:Body></soapenv:Envelope>"#;
        let a = parse(xml, "n").unwrap();
        assert_eq!(a.total_found, Some(0));
        assert!(a.nodes.is_empty());
        assert_eq!(a.state_info, "");
    }

    #[test]
    fn a_request_escapes_names_and_state_and_lists_one_item_per_name() {
        let x = select_cm_device_ext("<StateInfo a=\"1\"/>", &["SEP1", "A&B"], "Any");
        assert!(x.contains("<soap:item><soap:Item>SEP1</soap:Item></soap:item><soap:item><soap:Item>A&amp;B</soap:Item></soap:item>"));
        assert!(x.contains("&lt;StateInfo a=&quot;1&quot;/&gt;"));
        assert!(x.contains("<soap:MaxReturnedDevices>2</soap:MaxReturnedDevices>"));
    }

    #[test]
    fn not_xml_is_a_wire_error() {
        assert!(matches!(
            parse("<html>oops</html>", "n"),
            Err(CucmError::Wire(_))
        ));
    }
}
