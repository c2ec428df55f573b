//! RisPort70 `selectCtiItem` for class `Provider` (`cucm-sources.md` §1.9): which CTIManager
//! holds the watched application users' providers open.

use serde::Deserialize;

use crate::error::CucmError;
use crate::risport::NS;
use crate::soap::{self, Items, esc, xml_u32};

/// A `selectCtiItem` request for the providers of `users`.
pub fn select_providers(users: &[&str]) -> String {
    let mut items = String::new();
    for u in users {
        items.push_str("<soap:item><soap:AppItem>");
        items.push_str(&esc(u));
        items.push_str("</soap:AppItem></soap:item>");
    }
    let body = format!(
        "<soap:selectCtiItem><soap:StateInfo></soap:StateInfo><soap:CtiSelectionCriteria>\
<soap:MaxReturnedItems>200</soap:MaxReturnedItems><soap:CtiMgrClass>Provider</soap:CtiMgrClass>\
<soap:Status>Any</soap:Status><soap:NodeName></soap:NodeName><soap:SelectAppBy>UserId</soap:SelectAppBy>\
<soap:AppItems>{items}</soap:AppItems><soap:DevNames/><soap:DirNumbers/></soap:CtiSelectionCriteria>\
</soap:selectCtiItem>"
    );
    soap::envelope(&format!("xmlns:soap=\"{NS}\""), &body)
}

/// One provider (application connection) on one CTIManager.
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    /// The CTIManager (node) it is connected to.
    pub node: String,
    /// `UserId`.
    pub user: String,
    /// `AppStatus`: `Open`, `Closed`, `OpenFailed`, `Unknown`.
    pub status: String,
    /// `AppStatusReason`, raw (undocumented).
    pub reason: Option<u32>,
    /// `AppTimeStamp`, epoch seconds.
    pub timestamp: Option<u32>,
}

/// A `selectCtiItem` answer: the providers per node, and the nodes that did not answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CtiAnswer {
    /// Providers of nodes that answered.
    pub providers: Vec<Provider>,
    /// Nodes that answered (`Ok`/`NotFound`).
    pub answered: Vec<String>,
    /// Nodes that did not (`NodeNotResponding`, …).
    pub missing: Vec<String>,
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "selectCtiItemResponse")]
    response: Option<Response>,
}
#[derive(Deserialize)]
struct Response {
    #[serde(rename = "selectCtiItemReturn")]
    ret: Return,
}
#[derive(Deserialize)]
struct Return {
    #[serde(rename = "SelectCtiItemResult")]
    result: Option<ResultXml>,
}
#[derive(Deserialize)]
struct ResultXml {
    #[serde(rename = "CtiNodes")]
    nodes: Option<Items<CtiNode>>,
}
#[derive(Deserialize)]
struct CtiNode {
    #[serde(rename = "ReturnCode")]
    return_code: Option<String>,
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "CtiItems")]
    items: Option<Items<CtiItem>>,
}
#[derive(Deserialize)]
struct CtiItem {
    #[serde(rename = "UserId")]
    user: Option<String>,
    #[serde(rename = "AppStatus")]
    status: Option<String>,
    #[serde(rename = "AppStatusReason")]
    reason: Option<String>,
    #[serde(rename = "AppTimeStamp")]
    timestamp: Option<String>,
}

/// Reads a `selectCtiItem` answer; a SOAP fault comes back as its error.
pub fn parse(xml: &str, node: &str) -> Result<CtiAnswer, CucmError> {
    if let Some(f) = soap::fault(xml) {
        return Err(f.into_error(node));
    }
    let body: Body = soap::body(xml)?;
    let ret = body
        .response
        .ok_or_else(|| CucmError::Wire("no selectCtiItemResponse in the answer".into()))?
        .ret;
    let mut out = CtiAnswer::default();
    for n in ret.result.and_then(|r| r.nodes).unwrap_or_default().items {
        let name = n.name.unwrap_or_default().trim().to_string();
        match n.return_code.as_deref().map(str::trim) {
            Some("Ok" | "NotFound") => out.answered.push(name.clone()),
            _ => {
                out.missing.push(name);
                continue;
            }
        }
        for i in n.items.unwrap_or_default().items {
            out.providers.push(Provider {
                node: name.clone(),
                user: i.user.unwrap_or_default().trim().to_string(),
                status: i.status.unwrap_or_default().trim().to_string(),
                reason: xml_u32(i.reason.as_deref()),
                timestamp: xml_u32(i.timestamp.as_deref()),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_of_answering_nodes_read() {
        let xml = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><ns1:selectCtiItemResponse xmlns:ns1="http://schemas.cisco.com/ast/soap"><ns1:selectCtiItemReturn><ns1:SelectCtiItemResult><ns1:TotalItemsFound>1</ns1:TotalItemsFound><ns1:CtiNodes>
<ns1:item><ns1:ReturnCode>Ok</ns1:ReturnCode><ns1:Name>ucm-a1</ns1:Name><ns1:NoChange>false</ns1:NoChange><ns1:CtiItems><ns1:item><ns1:AppId>app</ns1:AppId><ns1:UserId>jtapi-cs</ns1:UserId><ns1:AppIpAddr>10.0.0.5</ns1:AppIpAddr><ns1:AppIpv6Addr/><ns1:AppStatus>Open</ns1:AppStatus><ns1:AppStatusReason>0</ns1:AppStatusReason><ns1:AppTimeStamp>1793611140</ns1:AppTimeStamp></ns1:item></ns1:CtiItems></ns1:item>
<ns1:item><ns1:ReturnCode>NodeNotResponding</ns1:ReturnCode><ns1:Name>ucm-a2</ns1:Name><ns1:NoChange>false</ns1:NoChange><ns1:CtiItems/></ns1:item>
</ns1:CtiNodes></ns1:SelectCtiItemResult><ns1:StateInfo/></ns1:selectCtiItemReturn></ns1:selectCtiItemResponse></soapenv:Body></soapenv:Envelope>"#;
        let a = parse(xml, "n").unwrap();
        assert_eq!(a.answered, vec!["ucm-a1"]);
        assert_eq!(a.missing, vec!["ucm-a2"]);
        assert_eq!(a.providers.len(), 1);
        assert_eq!(a.providers[0].status, "Open");
        assert_eq!(a.providers[0].timestamp, Some(1_793_611_140));
    }
}
