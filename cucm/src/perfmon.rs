//! PerfMon (`cucm-sources.md` §1.10): `perfmonCollectCounterData` for the "Cisco CTI Manager"
//! object of each node — whether the CTIManager is linked to CallManager and how many CTI
//! connections (applications' providers) it serves.

use serde::Deserialize;

use crate::error::CucmError;
use crate::risport::NS;
use crate::soap::{self, Items, esc};

/// The PerfMon service path.
pub const PATH: &str = "/perfmonservice2/services/PerfmonService";
/// The `SOAPAction` of `perfmonCollectCounterData`.
pub const ACTION: &str =
    "\"http://schemas.cisco.com/ast/soap/action/#PerfmonPort#perfmonCollectCounterData\"";
/// The object read.
pub const CTI_MANAGER: &str = "Cisco CTI Manager";

/// A `perfmonCollectCounterData` request for `object` on `host`.
pub fn collect(host: &str, object: &str) -> String {
    soap::envelope(
        &format!("xmlns:soap=\"{NS}\""),
        &format!(
            "<soap:perfmonCollectCounterData><soap:Host>{}</soap:Host><soap:Object>{}</soap:Object></soap:perfmonCollectCounterData>",
            esc(host),
            esc(object)
        ),
    )
}

/// One node's "Cisco CTI Manager" counters (those with `CStatus` 0 or 1).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CtiManagerCounters {
    /// `CcmLinkActive`: links to CallManager services that are up.
    pub ccm_link_active: Option<i64>,
    /// `CTIConnectionActive`: CTI applications connected.
    pub cti_connections: Option<i64>,
    /// `DevicesOpen`.
    pub devices_open: Option<i64>,
    /// `LinesOpen`.
    pub lines_open: Option<i64>,
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "perfmonCollectCounterDataResponse")]
    response: Option<Response>,
}
#[derive(Deserialize)]
struct Response {
    #[serde(rename = "ArrayOfCounterInfo")]
    counters: Option<Items<Counter>>,
}
#[derive(Deserialize)]
struct Counter {
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Value")]
    value: Option<String>,
    #[serde(rename = "CStatus")]
    status: Option<String>,
}

/// Reads an answer for the "Cisco CTI Manager" object; a SOAP fault comes back as its error.
pub fn parse_cti_manager(xml: &str, node: &str) -> Result<CtiManagerCounters, CucmError> {
    if let Some(f) = soap::fault(xml) {
        return Err(f.into_error(node));
    }
    let body: Body = soap::body(xml)?;
    let resp = body.response.ok_or_else(|| {
        CucmError::Wire("no perfmonCollectCounterDataResponse in the answer".into())
    })?;
    let mut out = CtiManagerCounters::default();
    for c in resp.counters.unwrap_or_default().items {
        // only CStatus 0 or 1 are valid values (practice)
        if !matches!(c.status.as_deref().map(str::trim), Some("0" | "1")) {
            continue;
        }
        let Some(value) = c.value.and_then(|v| v.trim().parse::<i64>().ok()) else {
            continue;
        };
        // `\\host\Cisco CTI Manager\Counter`: the counter is the last part
        let name = c.name.unwrap_or_default();
        match name.rsplit('\\').next().unwrap_or("").trim() {
            "CcmLinkActive" => out.ccm_link_active = Some(value),
            "CTIConnectionActive" => out.cti_connections = Some(value),
            "DevicesOpen" => out.devices_open = Some(value),
            "LinesOpen" => out.lines_open = Some(value),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_read_by_their_last_name_part_and_valid_status_only() {
        let xml = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><ns1:perfmonCollectCounterDataResponse xmlns:ns1="http://schemas.cisco.com/ast/soap"><ns1:ArrayOfCounterInfo>
<ns1:item><ns1:Name>\\ucm-a2\Cisco CTI Manager\CcmLinkActive</ns1:Name><ns1:Value>2</ns1:Value><ns1:CStatus>1</ns1:CStatus></ns1:item>
<ns1:item><ns1:Name>\\ucm-a2\Cisco CTI Manager\CTIConnectionActive</ns1:Name><ns1:Value>1</ns1:Value><ns1:CStatus>0</ns1:CStatus></ns1:item>
<ns1:item><ns1:Name>\\ucm-a2\Cisco CTI Manager\DevicesOpen</ns1:Name><ns1:Value>-1</ns1:Value><ns1:CStatus>3</ns1:CStatus></ns1:item>
</ns1:ArrayOfCounterInfo></ns1:perfmonCollectCounterDataResponse></soapenv:Body></soapenv:Envelope>"#;
        let c = parse_cti_manager(xml, "n").unwrap();
        assert_eq!(c.ccm_link_active, Some(2));
        assert_eq!(c.cti_connections, Some(1));
        assert_eq!(c.devices_open, None, "CStatus 3 is not a value");
        assert!(
            collect("ucm-a2", CTI_MANAGER).contains("<soap:Object>Cisco CTI Manager</soap:Object>")
        );
    }
}
