//! The mock's side of the wire: reading SOAP requests (by local name, as CUCM's Axis does)
//! and writing answers shaped as Cisco's WSDLs say (`cucm-sources.md` §1.4–§1.9).

use std::collections::HashMap;
use std::fmt::Write;

use quick_xml::escape::escape;
use quick_xml::events::Event as Xml;

/// A request: the operation (first element in the body) and the text of every leaf element
/// by local name, in document order.
#[derive(Debug, Default)]
pub struct Request {
    /// Operation (`selectCmDeviceExt`, `listPhone`, …).
    pub op: String,
    /// Leaf texts by local name.
    pub texts: HashMap<String, Vec<String>>,
}

impl Request {
    /// The first text of `name`.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.texts
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// Every text of `name`.
    pub fn all(&self, name: &str) -> &[String] {
        self.texts.get(name).map_or(&[], |v| v.as_slice())
    }
}

/// Reads a SOAP request; `None` if it is not one.
pub fn read_request(xml: &str) -> Option<Request> {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut req = Request::default();
    let mut in_body = false;
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    loop {
        match r.read_event().ok()? {
            Xml::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if in_body && req.op.is_empty() {
                    req.op = name.clone();
                }
                if name == "Body" {
                    in_body = true;
                }
                stack.push(name);
                text.clear();
            }
            Xml::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if in_body && req.op.is_empty() {
                    req.op = name.clone();
                }
                req.texts.entry(name).or_default().push(String::new());
            }
            Xml::Text(t) => text.push_str(&t.decode().ok()?),
            Xml::GeneralRef(g) => {
                if let Ok(Some(c)) = g.resolve_char_ref() {
                    text.push(c);
                    continue;
                }
                let name = String::from_utf8_lossy(&g);
                let c = match name.as_ref() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "",
                };
                text.push_str(c);
            }
            Xml::CData(c) => text.push_str(&String::from_utf8_lossy(&c)),
            Xml::End(_) => {
                if let Some(name) = stack.pop() {
                    req.texts
                        .entry(name)
                        .or_default()
                        .push(std::mem::take(&mut text));
                }
            }
            Xml::Eof => break,
            _ => {}
        }
    }
    (!req.op.is_empty()).then_some(req)
}

/// Wraps a body in Cisco's answer envelope.
pub fn envelope(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    )
}

/// RisPort's rate fault, as CUCM words it (misspelling included).
pub fn rate_fault(op: &str, rate: u32, host: &str) -> String {
    envelope(&format!(
        "<soapenv:Fault><faultcode xmlns:ns1=\"http://xml.apache.org/axis/\">ns1:Server.RateControl</faultcode>\
<faultstring>AxisFault: Exceeded allowed rate for Reatime information. Current allowed rate for realtime information is {rate} requests per minute.{}</faultstring>\
<detail><ns2:hostname xmlns:ns2=\"http://xml.apache.org/axis/\">{}</ns2:hostname></detail></soapenv:Fault>",
        escape(op),
        escape(host)
    ))
}

/// A client fault (unsupported operation, bad request).
pub fn client_fault(text: &str) -> String {
    envelope(&format!(
        "<soapenv:Fault><faultcode>soapenv:Client</faultcode><faultstring>{}</faultstring></soapenv:Fault>",
        escape(text)
    ))
}

/// One `CmDevice` record.
pub struct DeviceXml<'a> {
    /// Name.
    pub name: &'a str,
    /// `DeviceClass`.
    pub class: &'a str,
    /// `Model`.
    pub model: u32,
    /// Registered or not.
    pub registered: bool,
    /// `StatusReason`.
    pub reason: u32,
    /// `TimeStamp`.
    pub timestamp: i64,
    /// IPv4 address (none for route points).
    pub ip: Option<String>,
    /// `Description`.
    pub description: String,
}

/// Appends one `CmDevice` item, every element in WSDL order.
pub fn device_item(out: &mut String, d: &DeviceXml<'_>) {
    let status = if d.registered {
        "Registered"
    } else {
        "UnRegistered"
    };
    let _ = write!(
        out,
        "<ns1:item><ns1:Name>{name}</ns1:Name><ns1:DirNumber xsi:nil=\"true\"/><ns1:DeviceClass>{class}</ns1:DeviceClass>\
<ns1:Model>{model}</ns1:Model><ns1:Product>{model}</ns1:Product><ns1:BoxProduct>0</ns1:BoxProduct><ns1:Httpd>Yes</ns1:Httpd>\
<ns1:RegistrationAttempts>0</ns1:RegistrationAttempts><ns1:IsCtiControllable>true</ns1:IsCtiControllable>\
<ns1:LoginUserId xsi:nil=\"1\"/><ns1:Status>{status}</ns1:Status><ns1:StatusReason>{reason}</ns1:StatusReason>\
<ns1:PerfMonObject>2</ns1:PerfMonObject><ns1:DChannel>0</ns1:DChannel><ns1:Description>{desc}</ns1:Description>\
<ns1:H323Trunk><ns1:ConfigName xsi:nil=\"true\"/><ns1:TechPrefix xsi:nil=\"true\"/><ns1:Zone xsi:nil=\"true\"/></ns1:H323Trunk>\
<ns1:TimeStamp>{ts}</ns1:TimeStamp><ns1:Protocol>SIP</ns1:Protocol><ns1:NumOfLines>1</ns1:NumOfLines><ns1:LinesStatus/>\
<ns1:ActiveLoadID>sip88xx.14-2-1-0101-14</ns1:ActiveLoadID><ns1:InactiveLoadID/><ns1:DownloadStatus>Successful</ns1:DownloadStatus>\
<ns1:DownloadFailureReason/><ns1:DownloadServer/><ns1:IPAddress>",
        name = escape(d.name),
        class = d.class,
        model = d.model,
        reason = d.reason,
        desc = escape(&d.description),
        ts = d.timestamp,
    );
    if let Some(ip) = &d.ip {
        let _ = write!(
            out,
            "<ns1:item><ns1:IP>{ip}</ns1:IP><ns1:IPAddrType>ipv4</ns1:IPAddrType><ns1:Attribute>Unknown</ns1:Attribute></ns1:item>\
<ns1:item><ns1:IP>0:0:0:0:0:0:0:0</ns1:IP><ns1:IPAddrType>ipv6</ns1:IPAddrType><ns1:Attribute>Unknown</ns1:Attribute></ns1:item>"
        );
    }
    out.push_str("</ns1:IPAddress></ns1:item>");
}

/// A node's part of a `selectCmDevice` answer.
pub struct NodeXml {
    /// Name.
    pub name: String,
    /// `ReturnCode`.
    pub code: &'static str,
    /// `NoChange`.
    pub no_change: bool,
    /// Its `CmDevice` items, already written.
    pub devices: String,
}

/// A `selectCmDeviceResponse` (the WSDL output of both operations).
pub fn select_answer(total: usize, nodes: &[NodeXml], state_info: &str) -> String {
    let mut b =
        String::with_capacity(nodes.iter().map(|n| n.devices.len() + 200).sum::<usize>() + 500);
    let _ = write!(
        b,
        "<ns1:selectCmDeviceResponse xmlns:ns1=\"http://schemas.cisco.com/ast/soap\"><ns1:selectCmDeviceReturn>\
<ns1:SelectCmDeviceResult><ns1:TotalDevicesFound>{total}</ns1:TotalDevicesFound>"
    );
    if nodes.is_empty() {
        b.push_str("<ns1:CmNodes xsi:nil=\"1\"/>");
    } else {
        b.push_str("<ns1:CmNodes>");
        for n in nodes {
            let _ = write!(
                b,
                "<ns1:item><ns1:ReturnCode>{}</ns1:ReturnCode><ns1:Name>{}</ns1:Name><ns1:NoChange>{}</ns1:NoChange>",
                n.code,
                escape(&n.name),
                n.no_change
            );
            if n.devices.is_empty() {
                b.push_str("<ns1:CmDevices/>");
            } else {
                let _ = write!(b, "<ns1:CmDevices>{}</ns1:CmDevices>", n.devices);
            }
            b.push_str("</ns1:item>");
        }
        b.push_str("</ns1:CmNodes>");
    }
    let _ = write!(
        b,
        "</ns1:SelectCmDeviceResult><ns1:StateInfo>{}</ns1:StateInfo></ns1:selectCmDeviceReturn></ns1:selectCmDeviceResponse>",
        escape(state_info)
    );
    envelope(&b)
}
