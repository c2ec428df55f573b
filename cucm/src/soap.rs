//! SOAP 1.1 envelopes of the Serviceability and AXL APIs: building requests, reading answers
//! by local name (prefixes vary between releases and are ignored), and recognising faults.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::CucmError;

/// The SOAP 1.1 envelope namespace.
pub const SOAPENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// Text escaped for an XML element or attribute.
pub fn esc(text: &str) -> Cow<'_, str> {
    quick_xml::escape::escape(text)
}

/// A request envelope: `xmlns` declarations (e.g. `xmlns:soap="…"`) and the body's XML.
pub fn envelope(namespaces: &str, body: &str) -> String {
    format!(
        "<soapenv:Envelope xmlns:soapenv=\"{SOAPENV}\" {namespaces}><soapenv:Header/><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    )
}

#[derive(Deserialize)]
struct Envelope<B> {
    #[serde(rename = "Body")]
    body: B,
}

#[derive(Deserialize)]
struct FaultBody {
    #[serde(rename = "Fault")]
    fault: Option<FaultXml>,
}

#[derive(Deserialize)]
struct FaultXml {
    faultcode: Option<String>,
    faultstring: Option<String>,
    detail: Option<Detail>,
}

#[derive(Deserialize)]
struct Detail {
    hostname: Option<String>,
}

/// A SOAP fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// `faultcode`, prefix included (`ns1:Server.RateControl`).
    pub code: String,
    /// `faultstring`.
    pub text: String,
    /// `detail/hostname`: the node that answered.
    pub host: Option<String>,
}

impl Fault {
    /// RisPort's rate fault: by the code's suffix or the text, whatever the HTTP status.
    pub fn is_rate_control(&self) -> bool {
        self.code.ends_with("Server.RateControl") || self.text.contains("Exceeded allowed rate")
    }

    /// The error this fault is, answered by `node`.
    pub fn into_error(self, node: &str) -> CucmError {
        let node = self.host.clone().unwrap_or_else(|| node.to_string());
        if self.is_rate_control() {
            CucmError::RateControl {
                node,
                text: self.text,
            }
        } else {
            CucmError::Fault {
                node,
                code: self.code,
                text: self.text,
            }
        }
    }
}

/// The fault in an answer, if it is one.
pub fn fault(xml: &str) -> Option<Fault> {
    if !xml.contains("Fault") {
        return None;
    }
    let env: Envelope<FaultBody> = quick_xml::de::from_str(xml).ok()?;
    let f = env.body.fault?;
    Some(Fault {
        code: f.faultcode.unwrap_or_default().trim().to_string(),
        text: f.faultstring.unwrap_or_default().trim().to_string(),
        host: f
            .detail
            .and_then(|d| d.hostname)
            .map(|h| h.trim().to_string()),
    })
}

/// The body of an answer as `B` (a struct naming the expected response element).
pub fn body<B: DeserializeOwned>(xml: &str) -> Result<B, CucmError> {
    quick_xml::de::from_str::<Envelope<B>>(xml)
        .map(|e| e.body)
        .map_err(|e| CucmError::Wire(format!("not a SOAP answer of the expected shape: {e}")))
}

/// A list wrapper: `<Items><item>…</item>…</Items>`, empty or `xsi:nil` alike.
#[derive(Debug, Deserialize)]
pub struct Items<T> {
    /// The items.
    #[serde(rename = "item", default = "Vec::new")]
    pub items: Vec<T>,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Items { items: Vec::new() }
    }
}

/// `true`/`1` as XML Schema booleans.
pub fn xml_bool(v: Option<&str>) -> bool {
    matches!(v.map(str::trim), Some("true" | "1"))
}

/// An unsigned number, or `None` when absent, empty or not a number.
pub fn xml_u32(v: Option<&str>) -> Option<u32> {
    v.and_then(|s| s.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_fault_is_recognised_by_code_or_text() {
        let xml = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
 <soapenv:Body><soapenv:Fault>
  <faultcode xmlns:ns1="http://xml.apache.org/axis/">ns1:Server.RateControl</faultcode>
  <faultstring>AxisFault: Exceeded allowed rate for Reatime information. Current allowed rate for realtime information is 15 requests per minute.selectCmDeviceExt</faultstring>
  <detail><ns2:hostname xmlns:ns2="http://xml.apache.org/axis/">ucm-a1</ns2:hostname></detail>
 </soapenv:Fault></soapenv:Body>
</soapenv:Envelope>"#;
        let f = fault(xml).expect("a fault");
        assert!(f.is_rate_control());
        assert_eq!(f.host.as_deref(), Some("ucm-a1"));
        let by_text = Fault {
            code: "soapenv:Server".into(),
            text: "Exceeded allowed rate for Perfmon information".into(),
            host: None,
        };
        assert!(by_text.is_rate_control());
        let other = Fault {
            code: "soapenv:Client".into(),
            text: "Invalid request".into(),
            host: None,
        };
        assert!(!other.is_rate_control());
        assert!(matches!(other.into_error("n"), CucmError::Fault { .. }));
        assert!(fault("<html><body>401 Unauthorized</body></html>").is_none());
    }
}
