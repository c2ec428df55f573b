//! One CiscoLog message (`cucm-sources.md` §2.2, §2.3), read leniently: optional PRI and HOST,
//! an empty HOST, every stamp variant of [`super::stamp`], separators with any spacing, the
//! header split at the first `-<digit>-`, tags with spaces in keys, odd key spellings,
//! unescaped brackets in values, and a truncated last tag (dropped, `truncated`).

use chrono::{DateTime, Utc};

use super::stamp::{self, Stamp};

/// A CiscoLog alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    /// SEQNUM (per sending process, from 0).
    pub seqnum: u64,
    /// HOST, when given (empty when sent empty).
    pub host: Option<String>,
    /// The stamp as printed (a dedupe key part).
    pub stamp_text: String,
    /// The stamp read.
    pub stamp: Stamp,
    /// APPNAME (`UC_CALLMANAGER`).
    pub app: String,
    /// Severity from the header (not from PRI).
    pub severity: u8,
    /// MSGNAME (`EndPointUnregistered`).
    pub name: String,
    /// Tags, keys normalised (see [`normalise_key`]), in order.
    pub tags: Vec<(String, String)>,
    /// The last tag was cut off.
    pub truncated: bool,
    /// The pre-8.x format (`%CCM_…`, free-text body): recognised, not mapped.
    pub legacy: bool,
}

impl Alarm {
    /// The first value of a tag (by normalised key); empty values are unknown.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// What a line is.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A CiscoLog alarm.
    Alarm(Alarm),
    /// Not CiscoLog (OS lines on the same port: audit, systemd): kept raw, counted.
    Other,
    /// CiscoLog-looking but unreadable: the reason.
    Malformed(String),
}

/// A tag key as callstate compares it: `UNKNOWN_PARAMNAME:` stripped, spaces removed, a
/// trailing `.` stripped, lower case; `reasoncode` is `reason`.
pub fn normalise_key(k: &str) -> String {
    let k = k.trim();
    let k = k.strip_prefix("UNKNOWN_PARAMNAME:").unwrap_or(k);
    let mut out: String = k.chars().filter(|c| !c.is_whitespace()).collect();
    while out.ends_with('.') {
        out.pop();
    }
    let out = out.to_ascii_lowercase();
    match out.as_str() {
        "reasoncode" => "reason".into(),
        _ => out,
    }
}

/// Reads one message; `received` fills a missing year.
pub fn parse(line: &str, received: DateTime<Utc>) -> Line {
    let line = line.trim_end_matches(['\r', '\n', '\0']);
    let mut rest = line.trim_start();
    // <PRI>
    if let Some(r) = rest.strip_prefix('<') {
        match r.find('>') {
            Some(i) if i <= 3 && r[..i].bytes().all(|b| b.is_ascii_digit()) => rest = &r[i + 1..],
            _ => return Line::Other,
        }
    }
    // SEQNUM:
    let Some((seq, after)) = rest.split_once(':') else {
        return Line::Other;
    };
    let Ok(seqnum) = seq.trim().parse::<u64>() else {
        return Line::Other;
    };
    // the header: `%APP-SEV-NAME` after a colon
    let Some((head_at, app, severity, name, name_end)) = find_header(after) else {
        return Line::Other;
    };
    let before = after[..head_at].trim_end();
    let Some(before) = before.strip_suffix(':') else {
        return Line::Malformed("no `:` before the alarm header".into());
    };
    // [HOST: ] STAMP — the token after SEQNUM is a stamp when it parses as one
    let before = before.trim();
    let (host, stamp_text, stamp) = match stamp::parse(before, received) {
        Some(s) => (None, before, s),
        None => match before.split_once(':') {
            Some((h, s)) => match stamp::parse(s, received) {
                Some(st) => (Some(h.trim().to_string()), s.trim(), st),
                None => return Line::Malformed(format!("unreadable time stamp `{}`", s.trim())),
            },
            None => return Line::Malformed(format!("unreadable time stamp `{before}`")),
        },
    };
    let legacy = app.starts_with("CCM_");
    // after the name: `\s*:\s*`, then `%[tags]: text` or the text
    let body = after[name_end..].trim_start();
    let body = body.strip_prefix(':').unwrap_or(body).trim_start();
    let (tags, truncated) = match body.strip_prefix('%') {
        Some(t) if t.starts_with('[') && !legacy => read_tags(t),
        _ => (Vec::new(), false),
    };
    Line::Alarm(Alarm {
        seqnum,
        host,
        stamp_text: stamp_text.to_string(),
        stamp,
        app: app.to_string(),
        severity,
        name: name.to_string(),
        tags,
        truncated,
        legacy,
    })
}

/// Finds `%APP-SEV-NAME` preceded by `:` and spaces: its `%` position (in `s`), APPNAME,
/// SEV, MSGNAME and where the name ends.
fn find_header(s: &str) -> Option<(usize, &str, u8, &str, usize)> {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(k) = s[from..].find('%') {
        let at = from + k;
        from = at + 1;
        // preceded by `:` and optional spaces
        if !s[..at].trim_end().ends_with(':') {
            continue;
        }
        let word_end = s[at + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(s.len(), |e| at + 1 + e);
        let word = &s[at + 1..word_end];
        // split at the first `-<digit>-`
        let wb = word.as_bytes();
        let split = (0..wb.len().saturating_sub(2))
            .find(|&i| wb[i] == b'-' && wb[i + 1].is_ascii_digit() && wb[i + 2] == b'-');
        let Some(i) = split else { continue };
        let (app, sev, name) = (&word[..i], wb[i + 1] - b'0', &word[i + 3..]);
        if app.len() < 2 || name.is_empty() || sev > 7 {
            continue;
        }
        // the name is followed by `\s*:`
        if !s[word_end..].trim_start().starts_with(':') && word_end != bytes.len() {
            continue;
        }
        return Some((at, app, sev, name, word_end));
    }
    None
}

/// Reads `[k=v][k=v]…` up to the `]: ` before the text. A value ends at a `]` followed (after
/// spaces) by `[`, by `:` or by the end of the line, so unescaped brackets inside stay in it;
/// `\[`, `\]` and `\\` are unescaped. An unclosed last tag is dropped: `truncated`.
fn read_tags(s: &str) -> (Vec<(String, String)>, bool) {
    let mut tags = Vec::new();
    let mut rest = s;
    loop {
        let t = rest.trim_start();
        let Some(t) = t.strip_prefix('[') else {
            return (tags, false);
        };
        let Some(eq) = t.find('=') else {
            return (tags, true);
        };
        let key = normalise_key(&t[..eq]);
        let v = &t[eq + 1..];
        // find the closing bracket
        let mut end = None;
        let vb = v.as_bytes();
        let mut i = 0;
        while i < vb.len() {
            match vb[i] {
                b'\\' => i += 2,
                b']' => {
                    let after = v[i + 1..].trim_start();
                    if after.is_empty() || after.starts_with('[') || after.starts_with(':') {
                        end = Some(i);
                        break;
                    }
                    i += 1;
                }
                _ => i += 1,
            }
        }
        let Some(e) = end else {
            return (tags, true);
        };
        let value = v[..e]
            .replace("\\[", "[")
            .replace("\\]", "]")
            .replace("\\\\", "\\");
        tags.push((key, value.trim().to_string()));
        rest = &v[e + 1..];
        if rest.trim_start().starts_with(':') || rest.trim().is_empty() {
            return (tags, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rx() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 12, 0, 0).unwrap()
    }

    fn alarm(line: &str) -> Alarm {
        match parse(line, rx()) {
            Line::Alarm(a) => a,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn the_documented_example_lines_read_as_documented() {
        let a = alarm(
            "<187>10452: ucm-a2.clab.example: Nov 02 2026 09:14:03.512 UTC :  %UC_CALLMANAGER-3-EndPointUnregistered: %[DeviceName=SEP00CAFE000101][IPAddress=10.40.1.21][Protocol=SIP][DeviceType=592][Description=Helpdesk 4101][Reason=13][IPAddrAttributes=0][AppID=Cisco CallManager][ClusterID=CLA][NodeID=ucm-a2]: An endpoint has unregistered",
        );
        assert_eq!(
            (
                a.seqnum,
                a.host.as_deref(),
                a.app.as_str(),
                a.severity,
                a.name.as_str()
            ),
            (
                10452,
                Some("ucm-a2.clab.example"),
                "UC_CALLMANAGER",
                3,
                "EndPointUnregistered"
            )
        );
        assert_eq!(a.tag("devicename"), Some("SEP00CAFE000101"));
        assert_eq!(a.tag("reason"), Some("13"));
        assert_eq!(a.tag("nodeid"), Some("ucm-a2"));
        assert!(!a.truncated);
        // no HOST, 12-hour stamp with the fraction after AM
        let a = alarm(
            "<190>8811: Nov 02 2026 09:15:40 AM.077 UTC : %UC_CALLMANAGER-6-DeviceRegistered: %[DeviceName=CTIRP_HELPDESK][Protocol=SCCP][PerfMonObjType=2][DeviceType=73][AppID=Cisco CallManager][ClusterID=CLA][NodeID=ucm-a3]: Device registered.",
        );
        assert_eq!(a.host, None);
        assert_eq!(
            a.stamp.time.format("%H:%M:%S%.3f").to_string(),
            "09:15:40.077"
        );
        // no year; keys with spaces and a trailing dot; signed reason
        let a = alarm(
            "<187>10460: ucm-a2: Nov 02 09:16:02.880 UTC : %UC_CTI-3-CtiProviderOpenFailure: %[CTIconnectionId=77][ Login User Id=jtapi-cs][Reason code.=-1932787427][App ID=Cisco CTIManager][Cluster ID=CLA][Node ID=ucm-a2]: CTI application failed to open provider",
        );
        assert_eq!(a.tag("loginuserid"), Some("jtapi-cs"));
        assert_eq!(a.tag("reason"), Some("-1932787427"));
        assert_eq!(a.tag("nodeid"), Some("ucm-a2"));
        assert!(a.stamp.year_inferred);
        // unescaped brackets inside a value
        let a = alarm(
            "<190>10461: ucm-a2.clab.example: Nov 02 2026 09:17:30.200 UTC :  %UC_CALLMANAGER-6-EndPointRegistered: %[DeviceName=SEP00CAFE000104][Protocol=SIP][Description=Lab [B] bench][DeviceType=592][AppID=Cisco CallManager][ClusterID=CLA][NodeID=ucm-a2]: Endpoint registered.",
        );
        assert_eq!(a.tag("description"), Some("Lab [B] bench"));
        assert_eq!(a.tag("devicetype"), Some("592"));
        // truncated: the unclosed last tag is dropped, the closed ones kept
        let a = alarm(
            "<187>10462: ucm-a2.clab.example: Nov 02 2026 09:18:00.001 UTC :  %UC_CALLMANAGER-3-EndPointUnregistered: %[DeviceName=SEP00CAFE000105][IPAddress=10.40.1.25][Protocol=SIP][Reason=6][IPAddrAt",
        );
        assert!(a.truncated);
        assert_eq!(a.tag("reason"), Some("6"));
        assert_eq!(a.tags.len(), 4);
        // a space before the colon after the name
        let a = alarm(
            "<190>412: ucm-a3.clab.example: Nov 02 2026 09:21:10.600 UTC :  %UC_GENERIC-6-ServiceStopped : %[ServiceName=Cisco CTIManager][ProcessID=4410][AppID=Cisco Service Manager][ClusterID=CLA][NodeID=ucm-a3]: Service stopped.",
        );
        assert_eq!(a.name, "ServiceStopped");
        assert_eq!(a.tag("servicename"), Some("Cisco CTIManager"));
        // not CiscoLog
        assert_eq!(
            parse(
                "<14>99120: : audispd:node=ucm-a1 type=USER_LOGIN msg=audit(1793611300.120:881):",
                rx()
            ),
            Line::Other
        );
        assert_eq!(
            parse("systemd[1]: Started Session 4 of user root.", rx()),
            Line::Other
        );
    }

    #[test]
    fn lenient_variants_read() {
        // empty HOST, escaped brackets, UNKNOWN_PARAMNAME, an empty value, spaces between tags
        let a = alarm(
            "<14>1362992: : Nov 02 2026 06:22:31 UTC : %UC_CALLMANAGER-6-EndPointRegistered: %[DeviceName=SEP1] [Description=a \\[x\\] b][UNKNOWN_PARAMNAME:IPaddress=10.0.0.1][ClusterID=]: text",
        );
        assert_eq!(a.host.as_deref(), Some(""));
        assert_eq!(a.tag("description"), Some("a [x] b"));
        assert_eq!(a.tag("ipaddress"), Some("10.0.0.1"));
        assert_eq!(a.tag("clusterid"), None, "empty = unknown");
        // no PRI, the legacy format (recognised, no tags), and the header split at the first -digit-
        let a = alarm(
            "77: Nov 02 2026 06:22:31 UTC : %CCM_RTMT-RTMT-2-RTMT-ERROR-ALERT: Param Desc:value App ID:Cisco AMC Service Node ID:ucm-a1",
        );
        assert!(a.legacy);
        assert_eq!(
            (a.app.as_str(), a.name.as_str()),
            ("CCM_RTMT-RTMT", "RTMT-ERROR-ALERT")
        );
        // a lower-case application name
        let a = alarm(
            "<190>5: ucm-a1: Nov 02 2026 06:22:31 UTC : %UC_Xcp-6-Something: %[NodeID=ucm-a1]: x",
        );
        assert_eq!(a.app, "UC_Xcp");
        // an unreadable stamp is malformed, not silently dropped
        assert!(matches!(
            parse(
                "<190>5: ucm-a1: Nov 99 2026 06:22:31 UTC : %UC_CALLMANAGER-6-X: %[NodeID=ucm-a1]: x",
                rx()
            ),
            Line::Malformed(_)
        ));
    }
}
