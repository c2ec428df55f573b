//! CDR file names (`cucm-sources.md` §3.1): `tag_clusterId_nodeId_datetime_seq`, parsed from
//! the right (a cluster id may contain `_`); `datetime` is UTC `yyyymmddhhmm`.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

/// A CDR file's name, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    /// `cdr` or `cmr` (media-quality records, skipped).
    pub tag: String,
    /// The cluster id CUCM gives.
    pub cluster: String,
    /// The node id (two digits in every sample).
    pub node: String,
    /// The minute the file covers, UTC.
    pub minute: DateTime<Utc>,
    /// The file sequence number.
    pub seq: u64,
}

/// Reads a file name; `None` if it is not a CDR/CMR file name.
pub fn parse(name: &str) -> Option<FileName> {
    let mut parts = name.rsplitn(4, '_');
    let seq: u64 = parts.next()?.parse().ok()?;
    let datetime = parts.next()?;
    let node = parts.next()?;
    let rest = parts.next()?;
    let (tag, cluster) = rest.split_once('_')?;
    if !matches!(tag, "cdr" | "cmr") || cluster.is_empty() || node.is_empty() {
        return None;
    }
    if datetime.len() != 12 || !datetime.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let minute = NaiveDateTime::parse_from_str(datetime, "%Y%m%d%H%M").ok()?;
    Some(FileName {
        tag: tag.to_string(),
        cluster: cluster.to_string(),
        node: node.to_string(),
        minute: Utc.from_utc_datetime(&minute),
        seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_from_the_right() {
        let n = parse("cdr_StandAloneCluster_02_202012260557_476630").unwrap();
        assert_eq!(
            (n.tag.as_str(), n.cluster.as_str(), n.node.as_str(), n.seq),
            ("cdr", "StandAloneCluster", "02", 476630)
        );
        assert_eq!(n.minute.to_rfc3339(), "2020-12-26T05:57:00+00:00");
        // a cluster id with underscores
        let n = parse("cdr_my_lab_cluster_01_200404021658_1").unwrap();
        assert_eq!(n.cluster, "my_lab_cluster");
        assert_eq!(parse("cmr_CLA_02_202611020921_417").unwrap().tag, "cmr");
        for bad in [
            "cdr_CLA_02_2026110209_417",
            "foo_CLA_02_202611020921_417",
            "cdr_CLA_02_202611020921_x",
            "cdr_202611020921_1",
            "cdr_CLA_02_202613020921_417",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
