//! Unregistration reason codes (RisPort `StatusReason`, alarm `Reason`) to v1 causes, as in
//! `cucm-sources.md` §0.1 (the EndPointUnregistered alarm catalog of CUCM 14). SNMP cause codes
//! use another numbering and must never be passed here.

/// The v1 cause of a reason code, and whether CUCM treats it as planned (an SLA-exclusion
/// candidate, marked `planned: true`).
pub fn unregistration_cause(code: u32) -> (&'static str, bool) {
    use callstate_schemas::KnownCause::{Admin, Network, Rehome, Unknown, Unregistered};
    match code {
        0 | 1 => (Unknown.as_str(), false),
        6 | 13 | 23 | 24 => (Network.as_str(), false),
        8 => (Unregistered.as_str(), true),
        9 | 15 => (Admin.as_str(), true),
        10 | 33 | 34 => (Unregistered.as_str(), false),
        11 => ("MalformedRegisterMsg", false),
        12 => ("SCCPDeviceThrottling", false),
        14 => ("ConfigurationMismatch", false),
        16 | 28 => (Rehome.as_str(), false),
        17 | 22 | 30 => (Admin.as_str(), false),
        18 => ("DeviceNoResponse", false),
        19 => ("EMLoginLogout", true),
        20 => ("EMCCLoginLogout", true),
        21 => ("PowerSavePlus", false),
        25 => ("RegistrationSequenceError", false),
        26 => ("InvalidCapabilities", false),
        29 => ("DeviceSwitch", false),
        31 => ("DeviceForcedReset", false),
        _ => (Unknown.as_str(), false),
    }
}

/// Whether the code is one of the catalog's (others are reported as `unknown` with the raw
/// code kept in `reason_code`).
pub fn is_catalogued(code: u32) -> bool {
    matches!(code, 0 | 1 | 6 | 8..=26 | 28..=31 | 33 | 34)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_codes_map_as_documented() {
        assert_eq!(unregistration_cause(13), ("network", false));
        assert_eq!(unregistration_cause(28), ("rehome", false));
        assert_eq!(unregistration_cause(9), ("admin", true));
        assert_eq!(unregistration_cause(19), ("EMLoginLogout", true));
        // 27 and 32 are unassigned
        assert!(!is_catalogued(27) && !is_catalogued(32));
        assert_eq!(unregistration_cause(27), ("unknown", false));
        assert_eq!(unregistration_cause(99), ("unknown", false));
    }
}
