//! CDR codes (`cucm-sources.md` §3.4, §3.5): cause values to v1 cause names, OnBehalfOf
//! values, and the little-endian signed IPv4 integers.

use std::net::Ipv4Addr;

/// OnBehalfOf: a transfer.
pub const ON_BEHALF_TRANSFER: i64 = 10;
/// OnBehalfOf: recording.
pub const ON_BEHALF_RECORDING: i64 = 27;
/// OnBehalfOf: monitoring.
pub const ON_BEHALF_MONITORING: i64 = 28;
/// Cause: a leg split off by a transfer or conference.
pub const CAUSE_CALL_SPLIT: i64 = 393_216;

/// The v1 cause of a cause value (snake case of Cisco's name; SIP-mapped values by their SIP
/// status; unknown ones `cause_<n>`).
pub fn cause_name(value: i64) -> String {
    let v = value as u32; // printed signed at times: read as the 32-bit value
    let name = match v {
        0 => "no_error",
        1 => "unallocated_number",
        3 => "no_route_to_destination",
        16 => "normal_call_clearing",
        17 => "user_busy",
        18 => "no_user_responding",
        19 => "no_answer_from_user",
        21 => "call_rejected",
        27 => "destination_out_of_order",
        28 => "invalid_number_format",
        31 => "normal_unspecified",
        34 => "no_circuit_available",
        38 => "network_out_of_order",
        41 => "temporary_failure",
        42 => "switching_congestion",
        47 => "resource_unavailable",
        63 => "service_not_available",
        88 => "incompatible_destination",
        102 => "recovery_on_timer_expiry",
        111 => "protocol_error",
        125 => "out_of_bandwidth",
        126 | 393_216 => "call_split",
        127 => "interworking_unspecified",
        262_144 => "conference_full",
        458_752 => "conference_drop",
        0x5700_0029 => "sip_503_service_unavailable",
        0x4600_0011 => "sip_486_busy_here",
        0x4000_0012 => "sip_480_temporarily_unavailable",
        0x4700_001F => "sip_487_request_terminated",
        0x0500_0001 => "sip_404_not_found",
        0xA200_0015 => "sip_603_decline",
        n => return format!("cause_{n}"),
    };
    name.to_string()
}

/// Whether a call that never connected with this cause failed (busy, rejected, SIP errors),
/// as opposed to ending normally or being split off.
pub fn is_failure(value: i64) -> bool {
    !matches!(value as u32, 0 | 16 | 31 | 393_216 | 458_752)
}

/// An IPv4 integer as CUCM prints it (little-endian bytes, signed): `None` for 0.
pub fn ipv4(v: i64) -> Option<Ipv4Addr> {
    (v != 0).then(|| Ipv4Addr::from((v as i32 as u32).to_le_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_causes_and_failures_read_as_documented() {
        assert_eq!(ipv4(-939_448_310).unwrap().to_string(), "10.40.1.200");
        assert_eq!(ipv4(-1_139_627_840).unwrap().to_string(), "192.168.18.188");
        assert_eq!(ipv4(0), None);
        assert_eq!(cause_name(16), "normal_call_clearing");
        assert_eq!(cause_name(1_459_617_833), "sip_503_service_unavailable");
        assert_eq!(cause_name(2_717_909_013), "sip_603_decline");
        assert_eq!(
            cause_name(-1_577_058_283),
            "sip_603_decline",
            "printed signed"
        );
        assert_eq!(cause_name(4242), "cause_4242");
        assert!(is_failure(17) && !is_failure(16) && !is_failure(CAUSE_CALL_SPLIT));
    }
}
