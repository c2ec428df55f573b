//! AXL (`/axl/`): the watched inventory (`listPhone`, paged) and the device pools' CUCM groups
//! (`executeSQLQuery`), `cucm-sources.md` §1.2. Tag names are those of the AXL 14.0 schema.

use serde::Deserialize;

use crate::error::CucmError;
use crate::soap::{self, esc};

/// The AXL service path.
pub const PATH: &str = "/axl/";
/// The AXL schema version asked for.
pub const VERSION: &str = "14.0";
/// Devices per `listPhone` page.
pub const PAGE: usize = 1000;

/// The SQL that lists each device pool's CUCM group members in priority order.
pub const POOLS_SQL: &str = "select dp.name as pool, cm.name as node, m.priority as priority \
from devicepool dp join callmanagergroupmember m on m.fkcallmanagergroup = dp.fkcallmanagergroup \
join callmanager cm on cm.pkid = m.fkcallmanager order by dp.name, m.priority";

fn axl_envelope(body: &str) -> String {
    soap::envelope(
        &format!("xmlns:ns=\"http://www.cisco.com/AXL/API/{VERSION}\""),
        body,
    )
}

/// The `SOAPAction` of an AXL operation.
pub fn soap_action(op: &str) -> String {
    format!("\"CUCM:DB ver={VERSION} {op}\"")
}

/// A `listPhone` page: every device whose name matches `pattern` (`%` = all).
pub fn list_phone(pattern: &str, skip: usize, first: usize) -> String {
    axl_envelope(&format!(
        "<ns:listPhone><searchCriteria><name>{}</name></searchCriteria><returnedTags><name/><product/>\
<model/><class/><devicePoolName/></returnedTags><skip>{skip}</skip><first>{first}</first></ns:listPhone>",
        esc(pattern)
    ))
}

/// An `executeSQLQuery` request.
pub fn sql(query: &str) -> String {
    axl_envelope(&format!(
        "<ns:executeSQLQuery><sql>{}</sql></ns:executeSQLQuery>",
        esc(query)
    ))
}

/// A device of the inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Phone {
    /// Device name.
    pub name: String,
    /// Product (`Cisco 8865`, `CTI Port`, `CTI Route Point`, `CTI Remote Device`).
    pub product: String,
    /// Device class (`Phone`, `CTI Route Point`, …).
    pub class: String,
    /// Device pool.
    pub device_pool: Option<String>,
}

#[derive(Deserialize)]
struct ListBody {
    #[serde(rename = "listPhoneResponse")]
    response: Option<ListResponse>,
}
#[derive(Deserialize)]
struct ListResponse {
    #[serde(rename = "return")]
    ret: Option<ListReturn>,
}
#[derive(Deserialize)]
struct ListReturn {
    #[serde(rename = "phone", default)]
    phones: Vec<PhoneXml>,
}
#[derive(Deserialize)]
struct PhoneXml {
    name: Option<String>,
    product: Option<String>,
    class: Option<String>,
    #[serde(rename = "devicePoolName")]
    device_pool: Option<String>,
}

fn text(s: Option<String>) -> String {
    s.unwrap_or_default().trim().to_string()
}

/// Reads a `listPhone` answer.
pub fn parse_list_phone(xml: &str, node: &str) -> Result<Vec<Phone>, CucmError> {
    if let Some(f) = soap::fault(xml) {
        return Err(f.into_error(node));
    }
    let body: ListBody = soap::body(xml)?;
    let resp = body
        .response
        .ok_or_else(|| CucmError::Wire("no listPhoneResponse in the answer".into()))?;
    Ok(resp
        .ret
        .map(|r| r.phones)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let name = text(p.name);
            (!name.is_empty()).then(|| Phone {
                name,
                product: text(p.product),
                class: text(p.class),
                device_pool: Some(text(p.device_pool)).filter(|s| !s.is_empty()),
            })
        })
        .collect())
}

#[derive(Deserialize)]
struct SqlBody {
    #[serde(rename = "executeSQLQueryResponse")]
    response: Option<SqlResponse>,
}
#[derive(Deserialize)]
struct SqlResponse {
    #[serde(rename = "return")]
    ret: Option<SqlReturn>,
}
#[derive(Deserialize)]
struct SqlReturn {
    #[serde(rename = "row", default)]
    rows: Vec<PoolRow>,
}
#[derive(Deserialize)]
struct PoolRow {
    pool: Option<String>,
    node: Option<String>,
    priority: Option<String>,
}

/// Reads the answer to [`POOLS_SQL`]: `(pool, nodes in priority order)`.
pub fn parse_pools(xml: &str, node: &str) -> Result<Vec<(String, Vec<String>)>, CucmError> {
    if let Some(f) = soap::fault(xml) {
        return Err(f.into_error(node));
    }
    let body: SqlBody = soap::body(xml)?;
    let resp = body
        .response
        .ok_or_else(|| CucmError::Wire("no executeSQLQueryResponse in the answer".into()))?;
    let mut rows: Vec<(String, u32, String)> = resp
        .ret
        .map(|r| r.rows)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            let pool = text(r.pool);
            let node = text(r.node);
            let prio = text(r.priority).parse().unwrap_or(u32::MAX);
            (!pool.is_empty() && !node.is_empty()).then_some((pool, prio, node))
        })
        .collect();
    rows.sort();
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (pool, _, node) in rows {
        match out.last_mut() {
            Some((p, nodes)) if *p == pool => nodes.push(node),
            _ => out.push((pool, vec![node])),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_phone_and_pools_read() {
        let xml = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><ns:listPhoneResponse xmlns:ns="http://www.cisco.com/AXL/API/14.0"><return>
<phone uuid="{1}"><name>SEP00CAFE000101</name><product>Cisco 8865</product><model>Cisco 8865</model><class>Phone</class><devicePoolName uuid="{9}">DP-HQ</devicePoolName></phone>
<phone uuid="{2}"><name>CTIRP_HELPDESK</name><product>CTI Route Point</product><model>CTI Route Point</model><class>CTI Route Point</class><devicePoolName uuid="{9}">DP-HQ</devicePoolName></phone>
</return></ns:listPhoneResponse></soapenv:Body></soapenv:Envelope>"#;
        let p = parse_list_phone(xml, "n").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].product, "CTI Route Point");
        assert_eq!(p[0].device_pool.as_deref(), Some("DP-HQ"));
        let xml = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><ns:executeSQLQueryResponse xmlns:ns="http://www.cisco.com/AXL/API/14.0"><return>
<row><pool>DP-HQ</pool><node>ucm-a2</node><priority>2</priority></row><row><pool>DP-HQ</pool><node>ucm-a1</node><priority>1</priority></row>
</return></ns:executeSQLQueryResponse></soapenv:Body></soapenv:Envelope>"#;
        assert_eq!(
            parse_pools(xml, "n").unwrap(),
            vec![(
                "DP-HQ".to_string(),
                vec!["ucm-a1".to_string(), "ucm-a2".to_string()]
            )]
        );
        let empty = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><ns:listPhoneResponse xmlns:ns="http://www.cisco.com/AXL/API/14.0"><return/></ns:listPhoneResponse></soapenv:Body></soapenv:Envelope>"#;
        assert!(parse_list_phone(empty, "n").unwrap().is_empty());
    }
}
