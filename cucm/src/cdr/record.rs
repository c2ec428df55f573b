//! CDR files (`cucm-sources.md` §3.2–§3.4): a names line and a types line, then one record per
//! line, read with a real CSV reader (RFC 4180, doubled quotes) and mapped by header name,
//! case-insensitively, never by position: the 129- and 133-column layouts alike. A file whose
//! names line is missing (it starts with the types line) is read with the standard names.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};

use super::codes::ipv4;

/// The 133 field names of CUCM 14/15 in file order (the 129-column layout is a prefix).
pub const STANDARD_NAMES: [&str; 133] = [
    "cdrRecordType",
    "globalCallID_callManagerId",
    "globalCallID_callId",
    "origLegCallIdentifier",
    "dateTimeOrigination",
    "origNodeId",
    "origSpan",
    "origIpAddr",
    "callingPartyNumber",
    "callingPartyUnicodeLoginUserID",
    "origCause_location",
    "origCause_value",
    "origPrecedenceLevel",
    "origMediaTransportAddress_IP",
    "origMediaTransportAddress_Port",
    "origMediaCap_payloadCapability",
    "origMediaCap_maxFramesPerPacket",
    "origMediaCap_g723BitRate",
    "origVideoCap_Codec",
    "origVideoCap_Bandwidth",
    "origVideoCap_Resolution",
    "origVideoTransportAddress_IP",
    "origVideoTransportAddress_Port",
    "origRSVPAudioStat",
    "origRSVPVideoStat",
    "destLegIdentifier",
    "destNodeId",
    "destSpan",
    "destIpAddr",
    "originalCalledPartyNumber",
    "finalCalledPartyNumber",
    "finalCalledPartyUnicodeLoginUserID",
    "destCause_location",
    "destCause_value",
    "destPrecedenceLevel",
    "destMediaTransportAddress_IP",
    "destMediaTransportAddress_Port",
    "destMediaCap_payloadCapability",
    "destMediaCap_maxFramesPerPacket",
    "destMediaCap_g723BitRate",
    "destVideoCap_Codec",
    "destVideoCap_Bandwidth",
    "destVideoCap_Resolution",
    "destVideoTransportAddress_IP",
    "destVideoTransportAddress_Port",
    "destRSVPAudioStat",
    "destRSVPVideoStat",
    "dateTimeConnect",
    "dateTimeDisconnect",
    "lastRedirectDn",
    "pkid",
    "originalCalledPartyNumberPartition",
    "callingPartyNumberPartition",
    "finalCalledPartyNumberPartition",
    "lastRedirectDnPartition",
    "duration",
    "origDeviceName",
    "destDeviceName",
    "origCallTerminationOnBehalfOf",
    "destCallTerminationOnBehalfOf",
    "origCalledPartyRedirectOnBehalfOf",
    "lastRedirectRedirectOnBehalfOf",
    "origCalledPartyRedirectReason",
    "lastRedirectRedirectReason",
    "destConversationId",
    "globalCallId_ClusterID",
    "joinOnBehalfOf",
    "comment",
    "authCodeDescription",
    "authorizationLevel",
    "clientMatterCode",
    "origDTMFMethod",
    "destDTMFMethod",
    "callSecuredStatus",
    "origConversationId",
    "origMediaCap_Bandwidth",
    "destMediaCap_Bandwidth",
    "authorizationCodeValue",
    "outpulsedCallingPartyNumber",
    "outpulsedCalledPartyNumber",
    "origIpv4v6Addr",
    "destIpv4v6Addr",
    "origVideoCap_Codec_Channel2",
    "origVideoCap_Bandwidth_Channel2",
    "origVideoCap_Resolution_Channel2",
    "origVideoTransportAddress_IP_Channel2",
    "origVideoTransportAddress_Port_Channel2",
    "origVideoChannel_Role_Channel2",
    "destVideoCap_Codec_Channel2",
    "destVideoCap_Bandwidth_Channel2",
    "destVideoCap_Resolution_Channel2",
    "destVideoTransportAddress_IP_Channel2",
    "destVideoTransportAddress_Port_Channel2",
    "destVideoChannel_Role_Channel2",
    "IncomingProtocolID",
    "IncomingProtocolCallRef",
    "OutgoingProtocolID",
    "OutgoingProtocolCallRef",
    "currentRoutingReason",
    "origRoutingReason",
    "lastRedirectingRoutingReason",
    "huntPilotPartition",
    "huntPilotDN",
    "calledPartyPatternUsage",
    "IncomingICID",
    "IncomingOrigIOI",
    "IncomingTermIOI",
    "OutgoingICID",
    "OutgoingOrigIOI",
    "OutgoingTermIOI",
    "outpulsedOriginalCalledPartyNumber",
    "outpulsedLastRedirectingNumber",
    "wasCallQueued",
    "totalWaitTimeInQueue",
    "callingPartyNumber_uri",
    "originalCalledPartyNumber_uri",
    "finalCalledPartyNumber_uri",
    "lastRedirectDn_uri",
    "mobileCallingPartyNumber",
    "finalMobileCalledPartyNumber",
    "origMobileDeviceName",
    "destMobileDeviceName",
    "origMobileCallDuration",
    "destMobileCallDuration",
    "mobileCallType",
    "originalCalledPartyPattern",
    "finalCalledPartyPattern",
    "lastRedirectingPartyPattern",
    "huntPilotPattern",
    "origDeviceType",
    "destDeviceType",
    "origDeviceSessionID",
    "destDeviceSessionID",
];

/// One end-of-call record: the fields callstate uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    /// Its row in the file (1 = the first record, after the two header lines).
    pub row: usize,
    /// `globalCallID_callManagerId`.
    pub call_manager_id: i64,
    /// `globalCallID_callId`.
    pub global_call_id: i64,
    /// `origLegCallIdentifier`.
    pub orig_leg: i64,
    /// `destLegIdentifier`.
    pub dest_leg: i64,
    /// `dateTimeOrigination`.
    pub origination: DateTime<Utc>,
    /// `dateTimeConnect` (none: never answered).
    pub connect: Option<DateTime<Utc>>,
    /// `dateTimeDisconnect`.
    pub disconnect: DateTime<Utc>,
    /// `duration`, seconds.
    pub duration: i64,
    /// `origDeviceName`.
    pub orig_device: String,
    /// `destDeviceName` (empty: no destination reached).
    pub dest_device: String,
    /// `callingPartyNumber`.
    pub calling: String,
    /// `originalCalledPartyNumber`.
    pub original_called: String,
    /// `finalCalledPartyNumber`.
    pub final_called: String,
    /// `origCause_value`.
    pub orig_cause: i64,
    /// `destCause_value`.
    pub dest_cause: i64,
    /// `origCallTerminationOnBehalfOf`.
    pub orig_term_on_behalf: i64,
    /// `destCallTerminationOnBehalfOf`.
    pub dest_term_on_behalf: i64,
    /// `origCalledPartyRedirectOnBehalfOf`.
    pub orig_redirect_on_behalf: i64,
    /// `lastRedirectRedirectOnBehalfOf`.
    pub last_redirect_on_behalf: i64,
    /// `joinOnBehalfOf`.
    pub join_on_behalf: i64,
    /// `globalCallId_ClusterID`.
    pub cluster_id: String,
    /// The originator's address (`origIpv4v6Addr`, else `origIpAddr`).
    pub orig_ip: Option<IpAddr>,
    /// The destination's address.
    pub dest_ip: Option<IpAddr>,
}

impl Record {
    /// The record's call id: unique per record even when records share a global call id.
    pub fn call_id(&self) -> String {
        format!(
            "{}-{}-{}-{}",
            self.call_manager_id, self.global_call_id, self.orig_leg, self.dest_leg
        )
    }

    /// Every OnBehalfOf value of the record.
    pub fn on_behalf(&self) -> [i64; 5] {
        [
            self.orig_term_on_behalf,
            self.dest_term_on_behalf,
            self.orig_redirect_on_behalf,
            self.last_redirect_on_behalf,
            self.join_on_behalf,
        ]
    }
}

/// A row that could not be read: its row, the field at fault and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    /// Row (1 = the first record).
    pub row: usize,
    /// The field, if one is at fault.
    pub field: Option<String>,
    /// Why.
    pub reason: String,
}

/// A file read: its records (type 1), and the rows that could not be read.
#[derive(Debug, Default)]
pub struct CdrFile {
    /// End-of-call records, in file order.
    pub records: Vec<Record>,
    /// Rows that could not be read.
    pub errors: Vec<RowError>,
    /// Rows of other record types (0 start, 2 CMR), skipped.
    pub other_types: usize,
    /// Columns of the layout (129, 133, …).
    pub columns: usize,
}

fn epoch(v: i64) -> Option<DateTime<Utc>> {
    (v > 0).then(|| Utc.timestamp_opt(v, 0).single()).flatten()
}

/// Reads a whole file. `Err` when the file has no header at all (not a CDR file).
pub fn read(bytes: &[u8]) -> Result<CdrFile, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut rows = rdr.records();
    let first = match rows.next() {
        Some(Ok(r)) => r,
        Some(Err(e)) => return Err(format!("line 1: {e}")),
        None => return Err("empty file".into()),
    };
    let is_types = |r: &csv::StringRecord| {
        r.get(0).is_some_and(|f| f.trim() == "INTEGER")
            && r.iter().all(|f| {
                let f = f.trim();
                f == "INTEGER" || f == "UNIQUEIDENTIFIER" || f.starts_with("VARCHAR")
            })
    };
    let names: Vec<String> = if is_types(&first) {
        // no names line: the standard layout of that many columns
        if first.len() > STANDARD_NAMES.len() {
            return Err(format!("{} columns and no names line", first.len()));
        }
        STANDARD_NAMES[..first.len()]
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect()
    } else {
        let names: Vec<String> = first
            .iter()
            .map(|n| n.trim().to_ascii_lowercase())
            .collect();
        if !names.iter().any(|n| n == "cdrrecordtype") {
            return Err("line 1 is neither the names line nor the types line".into());
        }
        // the types line follows
        match rows.next() {
            Some(Ok(t)) if is_types(&t) => {}
            Some(Ok(_)) => return Err("line 2 is not the types line".into()),
            Some(Err(e)) => return Err(format!("line 2: {e}")),
            None => {}
        }
        names
    };
    let col: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut out = CdrFile {
        columns: names.len(),
        ..CdrFile::default()
    };
    for (k, row) in rows.enumerate() {
        let n = k + 1;
        let r = match row {
            Ok(r) => r,
            Err(e) => {
                out.errors.push(RowError {
                    row: n,
                    field: None,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        if r.len() != names.len() {
            out.errors.push(RowError {
                row: n,
                field: None,
                reason: format!("{} fields, the header has {}", r.len(), names.len()),
            });
            continue;
        }
        match record(&r, &col, n) {
            Ok(Some(rec)) => out.records.push(rec),
            Ok(None) => out.other_types += 1,
            Err(e) => out.errors.push(e),
        }
    }
    Ok(out)
}

fn record(
    r: &csv::StringRecord,
    col: &HashMap<&str, usize>,
    row: usize,
) -> Result<Option<Record>, RowError> {
    let text = |name: &str| -> String {
        col.get(name)
            .and_then(|&i| r.get(i))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let int = |name: &str| -> Result<i64, RowError> {
        let t = text(name);
        if t.is_empty() {
            return Ok(0);
        }
        t.parse::<i64>().map_err(|_| RowError {
            row,
            field: Some(name.to_string()),
            reason: format!("`{t}` is not an integer"),
        })
    };
    for required in [
        "cdrrecordtype",
        "datetimeorigination",
        "datetimedisconnect",
        "origdevicename",
    ] {
        if !col.contains_key(required) {
            return Err(RowError {
                row,
                field: Some(required.into()),
                reason: "missing from the header".into(),
            });
        }
    }
    if int("cdrrecordtype")? != 1 {
        return Ok(None);
    }
    let time = |name: &str| -> Result<DateTime<Utc>, RowError> {
        epoch(int(name)?).ok_or_else(|| RowError {
            row,
            field: Some(name.into()),
            reason: "not an epoch-seconds time".into(),
        })
    };
    let ip = |text_name: &str, int_name: &str| -> Result<Option<IpAddr>, RowError> {
        let t = text(text_name);
        if !t.is_empty() {
            return Ok(t.parse().ok());
        }
        Ok(ipv4(int(int_name)?).map(IpAddr::V4))
    };
    Ok(Some(Record {
        row,
        call_manager_id: int("globalcallid_callmanagerid")?,
        global_call_id: int("globalcallid_callid")?,
        orig_leg: int("origlegcallidentifier")?,
        dest_leg: int("destlegidentifier")?,
        origination: time("datetimeorigination")?,
        connect: epoch(int("datetimeconnect")?),
        disconnect: time("datetimedisconnect")?,
        duration: int("duration")?,
        orig_device: text("origdevicename"),
        dest_device: text("destdevicename"),
        calling: text("callingpartynumber"),
        original_called: text("originalcalledpartynumber"),
        final_called: text("finalcalledpartynumber"),
        orig_cause: int("origcause_value")?,
        dest_cause: int("destcause_value")?,
        orig_term_on_behalf: int("origcallterminationonbehalfof")?,
        dest_term_on_behalf: int("destcallterminationonbehalfof")?,
        orig_redirect_on_behalf: int("origcalledpartyredirectonbehalfof")?,
        last_redirect_on_behalf: int("lastredirectredirectonbehalfof")?,
        join_on_behalf: int("joinonbehalfof")?,
        cluster_id: text("globalcallid_clusterid"),
        orig_ip: ip("origipv4v6addr", "origipaddr")?,
        dest_ip: ip("destipv4v6addr", "destipaddr")?,
    }))
}
