//! The declarative v1 contract: every kind, its fields, their types and whether they are
//! required. The parser, the JSON Schema and the contract tests are all driven by this table,
//! so there is one place that says what a bridge may send.

use crate::event::{CallStateKind, DeviceActivity, DeviceType, Kind, KnownCause, RdChange, Scope};

/// The JSON type (and constraint) of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A non-empty string.
    Str,
    /// A non-negative integer that fits in 64 bits.
    U64,
    /// An RFC 3339 timestamp string with an offset.
    Time,
    /// `true` or `false`.
    Bool,
    /// A non-empty array of non-empty strings.
    StrList,
    /// A string from a closed set of values.
    Enum(&'static [&'static str]),
    /// A string with a set of well-known values; any other non-empty value is kept verbatim.
    OpenEnum(&'static [&'static str]),
}

/// One field of a kind (or of the envelope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// Field name, exactly as in the JSON.
    pub name: &'static str,
    /// Its JSON type.
    pub ty: FieldType,
    /// Whether an event of this kind must carry it.
    pub required: bool,
    /// One line for bridge authors.
    pub doc: &'static str,
}

/// One event kind.
#[derive(Debug, Clone, Copy)]
pub struct KindSpec {
    /// The kind.
    pub kind: Kind,
    /// The JTAPI / CUCM origin of the event.
    pub origin: &'static str,
    /// Its fields besides the envelope.
    pub fields: &'static [FieldSpec],
}

/// `device_type` values.
pub const DEVICE_TYPES: &[&str] = DeviceType::NAMES;
/// Well-known `cause` values; other values are kept verbatim.
pub const CAUSES: &[&str] = KnownCause::NAMES;
/// `device_state.state` values.
pub const DEVICE_ACTIVITIES: &[&str] = DeviceActivity::NAMES;
/// `call_state.state` values.
pub const CALL_STATES: &[&str] = CallStateKind::NAMES;
/// `remote_destination_changed.change` values.
pub const RD_CHANGES: &[&str] = RdChange::NAMES;
/// `maintenance_window.scope` values.
pub const SCOPES: &[&str] = Scope::NAMES;

const fn req(name: &'static str, ty: FieldType, doc: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        required: true,
        doc,
    }
}
const fn opt(name: &'static str, ty: FieldType, doc: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        required: false,
        doc,
    }
}

use FieldType::*;

/// The envelope every event carries.
pub const ENVELOPE: &[FieldSpec] = &[
    req(
        "source",
        Str,
        "identity of the bridge/collector that observed the event",
    ),
    req(
        "seq",
        U64,
        "per-source sequence number; (source, seq) is the idempotency key",
    ),
    req(
        "time",
        Time,
        "when it happened (event time), RFC 3339 with offset, microseconds kept",
    ),
    req("cluster", Str, "CUCM cluster id"),
    req("kind", Str, "the event kind"),
];

const DEVICE: FieldSpec = req("device", Str, "device (terminal) name");
const CALL_ID: FieldSpec = req("call_id", Str, "call identifier");
const CTIMANAGER: FieldSpec = req("ctimanager", Str, "CTIManager the provider is open on");
const DEVICE_CAUSE: FieldSpec = req("cause", OpenEnum(CAUSES), "reason");

/// Every kind of the v1 contract, in the order of design.md §1.
pub const KINDS: &[KindSpec] = &[
    KindSpec {
        kind: Kind::ProviderInService,
        origin: "ProvInServiceEv",
        fields: &[CTIMANAGER],
    },
    KindSpec {
        kind: Kind::ProviderOutOfService,
        origin: "ProvOutOfServiceEv / ProvShutdownEv",
        fields: &[CTIMANAGER, opt("cause", OpenEnum(CAUSES), "reason")],
    },
    KindSpec {
        kind: Kind::DeviceInService,
        origin: "CiscoTermInServiceEv",
        fields: &[
            DEVICE,
            req("device_type", Enum(DEVICE_TYPES), "device type"),
            req("node", Str, "CUCM node now handling the device's signaling"),
            opt("device_pool", Str, "device pool of the device"),
            opt("ctimanager", Str, "CTIManager that reported the event"),
        ],
    },
    KindSpec {
        kind: Kind::DeviceOutOfService,
        origin: "CiscoTermOutOfServiceEv",
        fields: &[
            DEVICE,
            DEVICE_CAUSE,
            opt("node", Str, "node that was handling the device"),
        ],
    },
    KindSpec {
        kind: Kind::DeviceRegistrationFailed,
        origin: "CiscoTermRegistrationFailedEv",
        fields: &[DEVICE, DEVICE_CAUSE],
    },
    KindSpec {
        kind: Kind::AddressInService,
        origin: "CiscoAddrInServiceEv",
        fields: &[DEVICE, req("address", Str, "directory number (line)")],
    },
    KindSpec {
        kind: Kind::AddressOutOfService,
        origin: "CiscoAddrOutOfServiceEv",
        fields: &[DEVICE, req("address", Str, "directory number (line)")],
    },
    KindSpec {
        kind: Kind::DeviceState,
        origin: "CiscoTermDeviceState*Ev",
        fields: &[
            DEVICE,
            req("state", Enum(DEVICE_ACTIVITIES), "device activity state"),
        ],
    },
    KindSpec {
        kind: Kind::RemoteDestinationChanged,
        origin: "CiscoProvTerminalRemoteDestinationChangedEv",
        fields: &[
            DEVICE,
            req("remote_destination", Str, "remote destination number"),
            req("change", Enum(RD_CHANGES), "what changed"),
            opt("active", Bool, "whether the remote destination is active"),
        ],
    },
    KindSpec {
        kind: Kind::CallStarted,
        origin: "CallActiveEv / ConnCreatedEv",
        fields: &[
            CALL_ID,
            DEVICE,
            opt("address", Str, "line the call is on"),
            opt("calling", Str, "calling party"),
            opt("called", Str, "called party"),
        ],
    },
    KindSpec {
        kind: Kind::CallState,
        origin: "Conn*/TermConn* events",
        fields: &[
            CALL_ID,
            DEVICE,
            req("state", Enum(CALL_STATES), "call state"),
        ],
    },
    KindSpec {
        kind: Kind::CallEnded,
        origin: "CallInvalidEv / ConnDisconnectedEv",
        fields: &[
            CALL_ID,
            DEVICE,
            req("cause", OpenEnum(CAUSES), "why the call ended"),
        ],
    },
    KindSpec {
        kind: Kind::TransferCompleted,
        origin: "CiscoTransferStartEv / CiscoTransferEndEv",
        fields: &[
            CALL_ID,
            req(
                "consult_call_id",
                Str,
                "the consultation call merged into call_id",
            ),
            req("device", Str, "the transfer controller"),
            opt("transferred_to", Str, "party the call was transferred to"),
        ],
    },
    KindSpec {
        kind: Kind::NodeDown,
        origin: "CUCM alarm CallManagerFailure / syslog",
        fields: &[
            req("node", Str, "CUCM node"),
            opt("cause", OpenEnum(CAUSES), "reason"),
        ],
    },
    KindSpec {
        kind: Kind::NodeUp,
        origin: "CUCM alarm / syslog",
        fields: &[
            req("node", Str, "CUCM node"),
            opt("cause", OpenEnum(CAUSES), "reason"),
        ],
    },
    KindSpec {
        kind: Kind::DevicePoolConfig,
        origin: "CUCM group of the device pool",
        fields: &[
            req("device_pool", Str, "device pool"),
            req(
                "nodes",
                StrList,
                "CUCM group nodes in priority order, primary (home) first",
            ),
        ],
    },
    KindSpec {
        kind: Kind::MaintenanceWindow,
        origin: "operator input",
        fields: &[
            req("scope", Enum(SCOPES), "what the window covers"),
            req(
                "target",
                Str,
                "cluster, node, device pool or device name, by scope",
            ),
            req("start", Time, "window start (inclusive)"),
            req("end", Time, "window end (exclusive); after start"),
            req("reason", Str, "why (change ticket, upgrade...)"),
        ],
    },
    KindSpec {
        kind: Kind::CollectorHeartbeat,
        origin: "emitted by a bridge at least every 30 s",
        fields: &[],
    },
];

/// The spec of one kind.
pub fn kind_spec(kind: Kind) -> &'static KindSpec {
    KINDS
        .iter()
        .find(|k| k.kind == kind)
        .expect("every Kind has a spec")
}

/// Every field name any kind may carry (besides the envelope), without repeats.
pub fn all_field_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for k in KINDS {
        for f in k.fields {
            if !names.contains(&f.name) {
                names.push(f.name);
            }
        }
    }
    names
}
