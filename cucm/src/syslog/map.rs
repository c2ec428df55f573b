//! Alarms to v1 events (`cucm-sources.md` §2.6): registration alarms to device events, node
//! and service alarms to node events, CTI provider alarms of watched application users to
//! provider events; everything else has no v1 meaning (kept raw with the reason).

use serde_json::{Map, Value, json};

use callstate_schemas::{Body, Cause, DeviceType, KnownCause};

use super::parse::Alarm;
use crate::reasons::unregistration_cause;
use crate::tracker::Pending;

/// What an alarm becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// A v1 event.
    Event(Pending),
    /// No v1 meaning: why.
    Ignored(String),
}

fn ignored(why: impl Into<String>) -> Mapped {
    Mapped::Ignored(why.into())
}

/// The node an alarm speaks for: `NodeID`, else HOST's first label.
pub fn node_of(a: &Alarm) -> Option<String> {
    a.tag("nodeid").map(str::to_string).or_else(|| {
        a.host
            .as_deref()
            .and_then(|h| h.split('.').next())
            .filter(|h| !h.is_empty())
            .map(str::to_string)
    })
}

/// Registration did not complete (EndPoint/DeviceTransientConnection `Reason`, §2.5).
fn transient_cause(code: i64) -> String {
    let name = match code {
        1 => return KnownCause::Unknown.as_str().into(),
        6 => return KnownCause::Network.as_str().into(),
        2 => "NoEntryInDatabase",
        3 => "DatabaseConfigurationError",
        4 => "DeviceNameUnresolveable",
        7 => "InitializationError",
        10 => "AuthenticationError",
        11 => "InvalidX509NameInCertificate",
        12 => "InvalidTLSCipher",
        14 => "MalformedRegisterMsg",
        15 => "ProtocolMismatch",
        16 => "DeviceNotActive",
        17 => "AuthenticatedDeviceAlreadyExists",
        18 => "ObsoleteProtocolVersion",
        19 => "DigestAuthChallenge",
        20 => "DigestAuthChallengeForID",
        21 => "DigestChallengeTimeout",
        22 => "ExpiresTimeTooSmall",
        23 => "DatabaseTimeout",
        24 => "UniqueDeviceForUserNotFound",
        25 => "RegistrationSequenceError",
        26 => "InvalidCapabilities",
        27 => "CapabilityResponseTimeout",
        28 => "SecurityMismatch",
        29 => "AutoRegisterDBError",
        30 => "DBAccessError",
        31 => "AutoRegisterDBConfigTimeout",
        32 => "DeviceTypeMismatch",
        33 => "AddressingModeMismatch",
        34 => "SourceVerificationForSoftwareMediaDevicesFailure",
        35 => "AuthorizationError",
        _ => return KnownCause::Unknown.as_str().into(),
    };
    name.into()
}

/// CtiProviderClosed `Reason` (§2.5).
fn provider_closed_cause(code: i64) -> String {
    match code {
        0 => KnownCause::Unknown.as_str().into(),
        1 => "app_heartbeat_missed".into(),
        2 => "connection_lost".into(),
        3 => "app_closed".into(),
        4 => "open_failed".into(),
        5 => "user_deleted".into(),
        n => format!("CtiProviderClosed:{n}"),
    }
}

/// CtiProviderOpenFailure `Reason`, printed signed (§2.5).
fn provider_open_failure_cause(code: i64) -> String {
    let unsigned = (code as i32) as u32;
    match unsigned {
        0x8CCC_0075 => "login_timeout".into(),
        0x8CCC_0060 => "directory_login_failed".into(),
        0x8CCC_005E => "directory_unavailable".into(),
        0x8CCC_005F => "cti_permission_missing".into(),
        0x8CCC_00D1 => "non_secure_port_for_secure_user".into(),
        0x8CCC_00D0 => "user_not_enabled_for_secure_connection".into(),
        0x8CCC_011D => "password_expired".into(),
        0x8CCC_011F => "account_locked".into(),
        n => format!("open_failure:0x{n:08X}"),
    }
}

fn device_type(a: &Alarm) -> DeviceType {
    match a.tag("devicetype").and_then(|t| t.parse::<u32>().ok()) {
        Some(72) => DeviceType::CtiPort,
        Some(73) => DeviceType::CtiRoutePoint,
        _ if a.name.starts_with("EndPoint") || a.tag("perfmonobjtype") == Some("2") => {
            DeviceType::Phone
        }
        _ => DeviceType::Other,
    }
}

/// The event an alarm means, if any; `cti_users` are the watched application users.
pub fn map(a: &Alarm, cti_users: &[String]) -> Mapped {
    if a.legacy {
        return ignored("legacy (pre-8.x) alarm format");
    }
    let mut extra = Map::new();
    extra.insert("alarm".into(), json!(a.name));
    extra.insert("syslog_seq".into(), json!(a.seqnum));
    if !a.stamp.authoritative {
        extra.insert("time_authoritative".into(), json!(false));
    }
    if a.stamp.zone_assumed {
        extra.insert("zone_assumed".into(), json!(true));
    }
    if a.truncated {
        extra.insert("truncated".into(), json!(true));
    }
    for (k, name) in [
        ("ipaddress", "ip"),
        ("protocol", "protocol"),
        ("reason", "reason_code"),
    ] {
        if let Some(v) = a.tag(k) {
            extra.insert(name.into(), json!(v));
        }
    }
    let node = node_of(a);
    let device = a.tag("devicename").map(str::to_string);
    let reason = a.tag("reason").and_then(|r| r.trim().parse::<i64>().ok());
    let watched = |a: &Alarm| {
        a.tag("loginuserid")
            .is_some_and(|u| cti_users.iter().any(|w| w.eq_ignore_ascii_case(u)))
    };
    let body = match a.name.as_str() {
        "EndPointRegistered" | "DeviceRegistered" | "DevicePartiallyRegistered" => {
            let (Some(device), Some(node)) = (device, node) else {
                return ignored("registration alarm without DeviceName or node");
            };
            if a.name == "DevicePartiallyRegistered" {
                extra.insert("partial".into(), json!(true));
            }
            Body::DeviceInService {
                device_type: device_type(a),
                device,
                node,
                device_pool: None,
                ctimanager: None,
            }
        }
        "EndPointUnregistered" | "DeviceUnregistered" => {
            let Some(device) = device else {
                return ignored("unregistration alarm without DeviceName");
            };
            let (cause, planned) =
                unregistration_cause(reason.unwrap_or(1).clamp(0, i64::from(u32::MAX)) as u32);
            if planned || a.severity == 6 {
                extra.insert("planned".into(), json!(true));
            }
            Body::DeviceOutOfService {
                device,
                cause: Cause::parse(cause),
                node,
            }
        }
        "EndPointTransientConnection" | "DeviceTransientConnection" => {
            let Some(device) = device else {
                return ignored("transient connection without DeviceName");
            };
            Body::DeviceRegistrationFailed {
                device,
                cause: Cause::parse(&transient_cause(reason.unwrap_or(1))),
            }
        }
        "CallManagerFailure" => {
            let Some(node) = a
                .tag("nodeid")
                .or(a.tag("hostname"))
                .map(str::to_string)
                .or(node)
            else {
                return ignored("CallManagerFailure without a node");
            };
            let cause = match reason {
                Some(2) => "HeartBeatStopped",
                Some(3) => "RouterThreadDied",
                Some(4) => "TimerThreadDied",
                Some(5) => "CriticalThreadDied",
                _ => KnownCause::Unknown.as_str(),
            };
            Body::NodeDown {
                node,
                cause: Some(Cause::parse(cause)),
            }
        }
        "CallManagerOnline" => {
            let Some(node) = node else {
                return ignored("CallManagerOnline without a node");
            };
            Body::NodeUp { node, cause: None }
        }
        "ServiceStopped" | "ServiceFailed" => {
            let Some(node) = node else {
                return ignored("service alarm without a node");
            };
            match a.tag("servicename") {
                Some("Cisco CallManager") => Body::NodeDown {
                    node,
                    cause: Some(Cause::parse(&a.name)),
                },
                Some("Cisco CTIManager") => Body::ProviderOutOfService {
                    ctimanager: node,
                    cause: Some(KnownCause::CtimanagerFailure.into()),
                },
                _ => return ignored("a service other than CallManager or CTIManager"),
            }
        }
        "CtiProviderOpened" | "CtiProviderClosed" | "CtiProviderOpenFailure" => {
            if !watched(a) {
                return ignored("CTI provider of an application user not watched (--cti-user)");
            }
            let Some(ctimanager) = node else {
                return ignored("CTI provider alarm without a node");
            };
            extra.insert("application_user".into(), json!(a.tag("loginuserid")));
            match a.name.as_str() {
                "CtiProviderOpened" => Body::ProviderInService { ctimanager },
                "CtiProviderClosed" => Body::ProviderOutOfService {
                    ctimanager,
                    cause: Some(Cause::parse(&provider_closed_cause(reason.unwrap_or(0)))),
                },
                _ => Body::ProviderOutOfService {
                    ctimanager,
                    cause: Some(Cause::parse(&provider_open_failure_cause(
                        reason.unwrap_or(0),
                    ))),
                },
            }
        }
        "ServiceStarted" | "SDLLinkISV" => {
            return ignored("no v1 meaning: CallManagerOnline / CtiProviderOpened say it");
        }
        _ => return ignored("no v1 meaning"),
    };
    Mapped::Event(Pending {
        time: a.stamp.time,
        body,
        extra,
    })
}

/// `extra` as JSON text for a raw-side-file record.
pub fn raw_record(line: &str, peer: &str, reason: &str) -> Value {
    json!({"peer": peer, "reason": reason, "line": line})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syslog::parse::{Line, parse};
    use chrono::TimeZone;

    fn m(line: &str) -> Mapped {
        let rx = chrono::Utc.with_ymd_and_hms(2026, 11, 2, 12, 0, 0).unwrap();
        match parse(line, rx) {
            Line::Alarm(a) => map(&a, &["jtapi-cs".to_string()]),
            other => panic!("{other:?}"),
        }
    }

    fn body(line: &str) -> Body {
        match m(line) {
            Mapped::Event(p) => p.body,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn the_documented_lines_map_as_documented() {
        assert_eq!(
            body(
                "<187>10452: ucm-a2.clab.example: Nov 02 2026 09:14:03.512 UTC :  %UC_CALLMANAGER-3-EndPointUnregistered: %[DeviceName=SEP00CAFE000101][IPAddress=10.40.1.21][Protocol=SIP][DeviceType=592][Description=Helpdesk 4101][Reason=13][IPAddrAttributes=0][AppID=Cisco CallManager][ClusterID=CLA][NodeID=ucm-a2]: An endpoint has unregistered"
            ),
            Body::DeviceOutOfService {
                device: "SEP00CAFE000101".into(),
                cause: KnownCause::Network.into(),
                node: Some("ucm-a2".into())
            }
        );
        assert_eq!(
            body(
                "<190>8811: Nov 02 2026 09:15:40 AM.077 UTC : %UC_CALLMANAGER-6-DeviceRegistered: %[DeviceName=CTIRP_HELPDESK][Protocol=SCCP][PerfMonObjType=2][DeviceType=73][AppID=Cisco CallManager][ClusterID=CLA][NodeID=ucm-a3]: Device registered."
            ),
            Body::DeviceInService {
                device: "CTIRP_HELPDESK".into(),
                device_type: DeviceType::CtiRoutePoint,
                node: "ucm-a3".into(),
                device_pool: None,
                ctimanager: None
            }
        );
        assert_eq!(
            body(
                "<187>10460: ucm-a2: Nov 02 09:16:02.880 UTC : %UC_CTI-3-CtiProviderOpenFailure: %[CTIconnectionId=77][ Login User Id=jtapi-cs][Reason code.=-1932787427][App ID=Cisco CTIManager][Cluster ID=CLA][Node ID=ucm-a2]: CTI application failed to open provider"
            ),
            Body::ProviderOutOfService {
                ctimanager: "ucm-a2".into(),
                cause: Some(Cause::parse("password_expired"))
            }
        );
        // truncated: the node from HOST's first label
        assert_eq!(
            body(
                "<187>10462: ucm-a2.clab.example: Nov 02 2026 09:18:00.001 UTC :  %UC_CALLMANAGER-3-EndPointUnregistered: %[DeviceName=SEP00CAFE000105][IPAddress=10.40.1.25][Protocol=SIP][Reason=6][IPAddrAt"
            ),
            Body::DeviceOutOfService {
                device: "SEP00CAFE000105".into(),
                cause: KnownCause::Network.into(),
                node: Some("ucm-a2".into())
            }
        );
        assert_eq!(
            body(
                "<186>311: ucm-a2.clab.example: Nov 02 2026 09:20:00.120 UTC :  %UC_CALLMANAGER-2-CallManagerFailure: %[HostName=ucm-a2][IPAddress=10.40.0.12][Reason=3][AppID=Cisco CallManager][ClusterID=CLA][NodeID=ucm-a2]: CallManager failure"
            ),
            Body::NodeDown {
                node: "ucm-a2".into(),
                cause: Some(Cause::parse("RouterThreadDied"))
            }
        );
        assert_eq!(
            body(
                "<190>412: ucm-a3.clab.example: Nov 02 2026 09:21:10.600 UTC :  %UC_GENERIC-6-ServiceStopped : %[ServiceName=Cisco CTIManager][ProcessID=4410][AppID=Cisco Service Manager][ClusterID=CLA][NodeID=ucm-a3]: Service stopped."
            ),
            Body::ProviderOutOfService {
                ctimanager: "ucm-a3".into(),
                cause: Some(KnownCause::CtimanagerFailure.into())
            }
        );
        assert_eq!(
            body(
                "<187>9: ucm-a1: Nov 02 2026 09:21:10.600 UTC : %UC_CALLMANAGER-3-EndPointTransientConnection: %[IPAddress=10.1.1.1][DeviceName=SEP9][Reason=10][NodeID=ucm-a1]: x"
            ),
            Body::DeviceRegistrationFailed {
                device: "SEP9".into(),
                cause: Cause::parse("AuthenticationError")
            }
        );
    }

    #[test]
    fn what_has_no_meaning_says_why() {
        for line in [
            "<190>1: ucm-a1: Nov 02 2026 09:21:10.600 UTC : %UC_CTI-6-CtiProviderOpened: %[LoginUserId=other-app][NodeID=ucm-a1]: x",
            "<190>2: ucm-a1: Nov 02 2026 09:21:10.600 UTC : %UC_CALLMANAGER-6-EndPointRegistered: %[IPAddress=1.2.3.4][NodeID=ucm-a1]: no device",
            "<190>3: ucm-a1: Nov 02 2026 09:21:10.600 UTC : %UC_GENERIC-6-ServiceStarted: %[ServiceName=Cisco CallManager][NodeID=ucm-a1]: x",
            "<190>4: ucm-a1: Nov 02 2026 09:21:10.600 UTC : %UC_RTMT-2-RTMT_ALERT: %[AlertName=x][AlertDetail=%UC_CALLMANAGER-3-EndPointUnregistered: %[DeviceName=SEP1]][NodeID=ucm-a1]: x",
        ] {
            assert!(matches!(m(line), Mapped::Ignored(_)), "{line}");
        }
    }
}
