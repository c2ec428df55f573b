//! The typed v1 event model (design.md §1).

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::time::format_time;

str_enum!(
    /// The event kind (`kind` field).
    Kind {
        /// Provider opened on a CTIManager (ProvInServiceEv).
        ProviderInService => "provider_in_service",
        /// Provider lost (ProvOutOfServiceEv / ProvShutdownEv).
        ProviderOutOfService => "provider_out_of_service",
        /// Device in service on a node (CiscoTermInServiceEv).
        DeviceInService => "device_in_service",
        /// Device out of service (CiscoTermOutOfServiceEv).
        DeviceOutOfService => "device_out_of_service",
        /// Registration failed (CiscoTermRegistrationFailedEv).
        DeviceRegistrationFailed => "device_registration_failed",
        /// Line in service (CiscoAddrInServiceEv).
        AddressInService => "address_in_service",
        /// Line out of service (CiscoAddrOutOfServiceEv).
        AddressOutOfService => "address_out_of_service",
        /// Device activity state (CiscoTermDeviceState*Ev).
        DeviceState => "device_state",
        /// Extend and Connect remote destination change.
        RemoteDestinationChanged => "remote_destination_changed",
        /// A call appeared on a device.
        CallStarted => "call_started",
        /// A call changed state.
        CallState => "call_state",
        /// A call ended.
        CallEnded => "call_ended",
        /// A consultation transfer completed.
        TransferCompleted => "transfer_completed",
        /// CUCM node failed.
        NodeDown => "node_down",
        /// CUCM node recovered.
        NodeUp => "node_up",
        /// A device pool's CUCM group (priority order).
        DevicePoolConfig => "device_pool_config",
        /// An operator maintenance window.
        MaintenanceWindow => "maintenance_window",
        /// Bridge liveness.
        CollectorHeartbeat => "collector_heartbeat",
    }
);

str_enum!(
    /// `device_type` of a device.
    DeviceType {
        /// IP phone.
        Phone => "phone",
        /// CTI Port.
        CtiPort => "cti_port",
        /// CTI Route Point.
        CtiRoutePoint => "cti_route_point",
        /// CTI Remote Device (Extend and Connect).
        CtiRemoteDevice => "cti_remote_device",
        /// Anything else.
        Other => "other",
    }
);

str_enum!(
    /// `device_state.state`: what the device is doing.
    DeviceActivity {
        /// No call.
        Idle => "idle",
        /// In a call.
        Active => "active",
        /// Ringing.
        Alerting => "alerting",
        /// Call on hold.
        Held => "held",
        /// Whisper coaching.
        Whisper => "whisper",
    }
);

str_enum!(
    /// `call_state.state`.
    CallStateKind {
        /// Ringing.
        Alerting => "alerting",
        /// Talking.
        Connected => "connected",
        /// On hold.
        Held => "held",
        /// Failed.
        Failed => "failed",
    }
);

str_enum!(
    /// `remote_destination_changed.change`.
    RdChange {
        /// Remote destination added.
        Added => "added",
        /// Remote destination removed.
        Removed => "removed",
        /// Remote destination updated.
        Updated => "updated",
    }
);

str_enum!(
    /// `maintenance_window.scope`.
    Scope {
        /// A whole cluster.
        Cluster => "cluster",
        /// A CUCM node.
        Node => "node",
        /// A device pool.
        DevicePool => "device_pool",
        /// One device.
        Device => "device",
    }
);

str_enum!(
    /// The well-known causes; see [`Cause`].
    KnownCause {
        /// The CUCM node handling the device failed.
        NodeFailure => "node_failure",
        /// The CTIManager failed.
        CtimanagerFailure => "ctimanager_failure",
        /// The device unregistered.
        Unregistered => "unregistered",
        /// Moved back to its home node.
        Rehome => "rehome",
        /// Network loss.
        Network => "network",
        /// Administrative action.
        Admin => "admin",
        /// Unknown.
        Unknown => "unknown",
    }
);

/// A `cause`: one of the well-known values, or anything else kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cause {
    /// A well-known cause.
    Known(KnownCause),
    /// Any other cause text, verbatim.
    Other(String),
}

impl Cause {
    /// The wire text.
    pub fn as_str(&self) -> &str {
        match self {
            Cause::Known(k) => k.as_str(),
            Cause::Other(s) => s,
        }
    }
    /// Parses wire text; never fails.
    pub fn parse(s: &str) -> Cause {
        KnownCause::parse(s).map_or_else(|| Cause::Other(s.to_string()), Cause::Known)
    }
}

impl From<KnownCause> for Cause {
    fn from(k: KnownCause) -> Self {
        Cause::Known(k)
    }
}

impl Serialize for Cause {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Kind-specific fields of an event (serialized through [`Body::fields`]).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Body {
    ProviderInService {
        ctimanager: String,
    },
    ProviderOutOfService {
        ctimanager: String,
        cause: Option<Cause>,
    },
    DeviceInService {
        device: String,
        device_type: DeviceType,
        node: String,
        device_pool: Option<String>,
        ctimanager: Option<String>,
    },
    DeviceOutOfService {
        device: String,
        cause: Cause,
        node: Option<String>,
    },
    DeviceRegistrationFailed {
        device: String,
        cause: Cause,
    },
    AddressInService {
        device: String,
        address: String,
    },
    AddressOutOfService {
        device: String,
        address: String,
    },
    DeviceState {
        device: String,
        state: DeviceActivity,
    },
    RemoteDestinationChanged {
        device: String,
        remote_destination: String,
        change: RdChange,
        active: Option<bool>,
    },
    CallStarted {
        call_id: String,
        device: String,
        address: Option<String>,
        calling: Option<String>,
        called: Option<String>,
    },
    CallState {
        call_id: String,
        device: String,
        state: CallStateKind,
    },
    CallEnded {
        call_id: String,
        device: String,
        cause: Cause,
    },
    TransferCompleted {
        call_id: String,
        consult_call_id: String,
        device: String,
        transferred_to: Option<String>,
    },
    NodeDown {
        node: String,
        cause: Option<Cause>,
    },
    NodeUp {
        node: String,
        cause: Option<Cause>,
    },
    DevicePoolConfig {
        device_pool: String,
        nodes: Vec<String>,
    },
    MaintenanceWindow {
        scope: Scope,
        target: String,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        reason: String,
    },
    CollectorHeartbeat,
}

/// One v1 event: the envelope, the kind-specific body, and unknown fields kept verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Bridge/collector identity.
    pub source: String,
    /// Per-source sequence number.
    pub seq: u64,
    /// Event time, UTC, microsecond precision.
    pub time: DateTime<Utc>,
    /// CUCM cluster id.
    pub cluster: String,
    /// Kind and kind-specific fields.
    pub body: Body,
    /// Unknown fields: a JSON object (keys sorted, compact), or `None`.
    pub extra: Option<String>,
}

impl Serialize for Event {
    /// The v1 wire format: envelope, `kind`, the kind's fields, then the unknown fields.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let f = self.body.fields();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("source", &self.source)?;
        m.serialize_entry("seq", &self.seq)?;
        m.serialize_entry("time", &format_time(&self.time))?;
        m.serialize_entry("cluster", &self.cluster)?;
        m.serialize_entry("kind", f.kind.as_str())?;
        let mut result = Ok(());
        f.for_each_value(|_, name, v| {
            if result.is_err() {
                return;
            }
            result = match v {
                FieldValue::Str(x) => m.serialize_entry(name, x),
                FieldValue::Bool(x) => m.serialize_entry(name, &x),
                FieldValue::Time(t) => m.serialize_entry(name, &format_time(&t)),
                FieldValue::List(l) => m.serialize_entry(name, l),
            };
        });
        result?;
        if let Some(text) = &self.extra {
            let extra: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
            for (k, v) in &extra {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

impl Body {
    /// The kind of this body.
    pub fn kind(&self) -> Kind {
        match self {
            Body::ProviderInService { .. } => Kind::ProviderInService,
            Body::ProviderOutOfService { .. } => Kind::ProviderOutOfService,
            Body::DeviceInService { .. } => Kind::DeviceInService,
            Body::DeviceOutOfService { .. } => Kind::DeviceOutOfService,
            Body::DeviceRegistrationFailed { .. } => Kind::DeviceRegistrationFailed,
            Body::AddressInService { .. } => Kind::AddressInService,
            Body::AddressOutOfService { .. } => Kind::AddressOutOfService,
            Body::DeviceState { .. } => Kind::DeviceState,
            Body::RemoteDestinationChanged { .. } => Kind::RemoteDestinationChanged,
            Body::CallStarted { .. } => Kind::CallStarted,
            Body::CallState { .. } => Kind::CallState,
            Body::CallEnded { .. } => Kind::CallEnded,
            Body::TransferCompleted { .. } => Kind::TransferCompleted,
            Body::NodeDown { .. } => Kind::NodeDown,
            Body::NodeUp { .. } => Kind::NodeUp,
            Body::DevicePoolConfig { .. } => Kind::DevicePoolConfig,
            Body::MaintenanceWindow { .. } => Kind::MaintenanceWindow,
            Body::CollectorHeartbeat => Kind::CollectorHeartbeat,
        }
    }

    /// The device this event is about, if any.
    pub fn device(&self) -> Option<&str> {
        self.fields().device
    }
}

impl Event {
    /// The event kind.
    pub fn kind(&self) -> Kind {
        self.body.kind()
    }

    /// One NDJSON line (no trailing newline) in the v1 wire format.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an Event always serializes")
    }

    /// A 64-bit hash of the event's content (envelope, body, extra), independent of key order
    /// and of the time zone offset the bridge wrote; used to tell duplicates from conflicts.
    pub fn content_hash(&self) -> u64 {
        self.view().content_hash()
    }

    /// The flat, borrowed view of this event.
    pub fn view(&self) -> EventView<'_> {
        EventView {
            source: &self.source,
            seq: self.seq,
            time_us: self.time.timestamp_micros(),
            cluster: &self.cluster,
            fields: self.body.fields(),
            extra: self.extra.as_deref(),
        }
    }
}

/// A flat, borrowed view of an event: the envelope, the kind's fields and `extra`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventView<'a> {
    /// Bridge/collector identity.
    pub source: &'a str,
    /// Per-source sequence number.
    pub seq: u64,
    /// Event time, microseconds since the epoch.
    pub time_us: i64,
    /// CUCM cluster id.
    pub cluster: &'a str,
    /// Kind and kind-specific fields.
    pub fields: Fields<'a>,
    /// Unknown fields (JSON object text), if any.
    pub extra: Option<&'a str>,
}

impl EventView<'_> {
    /// [`Event::content_hash`] of the viewed event.
    ///
    /// The value is stored with every event, so its definition is fixed: XXH3-64 of, for the
    /// envelope, each field present and `extra`, a tag byte, the length (u64 LE) and the
    /// bytes. The stream is written into a buffer and hashed at once, which gives the same
    /// value as feeding the pieces to a streaming hasher.
    pub fn content_hash(&self) -> u64 {
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(512));
        }
        BUF.with(|buf| self.content_hash_with(&mut buf.borrow_mut()))
    }

    /// [`EventView::content_hash`] using `buf` as scratch space.
    pub fn content_hash_with(&self, buf: &mut Vec<u8>) -> u64 {
        buf.clear();
        let mut put = |tag: u8, bytes: &[u8]| {
            buf.push(tag);
            buf.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            buf.extend_from_slice(bytes);
        };
        put(0, self.source.as_bytes());
        put(1, &self.seq.to_le_bytes());
        put(2, &self.time_us.to_le_bytes());
        put(3, self.cluster.as_bytes());
        let f = &self.fields;
        put(4, f.kind.as_str().as_bytes());
        f.for_each_value(|i, _, v| match v {
            FieldValue::Str(s) => put(16 + i as u8, s.as_bytes()),
            FieldValue::Bool(b) => put(16 + i as u8, &[b as u8]),
            FieldValue::Time(t) => put(16 + i as u8, &t.timestamp_micros().to_le_bytes()),
            FieldValue::List(l) => {
                put(16 + i as u8, &(l.len() as u64).to_le_bytes());
                for s in l {
                    put(15, s.as_bytes());
                }
            }
        });
        if let Some(extra) = self.extra {
            put(5, extra.as_bytes());
        }
        xxhash_rust::xxh3::xxh3_64(buf)
    }
}

/// A flat, borrowed view of a body: one optional value per column of the `events` table.
#[derive(Debug, Clone, Default, PartialEq)]
#[allow(missing_docs)]
pub struct Fields<'a> {
    pub kind: Kind,
    pub device: Option<&'a str>,
    pub device_type: Option<DeviceType>,
    pub node: Option<&'a str>,
    pub device_pool: Option<&'a str>,
    pub ctimanager: Option<&'a str>,
    pub cause: Option<&'a str>,
    pub state: Option<&'static str>,
    pub address: Option<&'a str>,
    pub call_id: Option<&'a str>,
    pub consult_call_id: Option<&'a str>,
    pub calling: Option<&'a str>,
    pub called: Option<&'a str>,
    pub transferred_to: Option<&'a str>,
    pub remote_destination: Option<&'a str>,
    pub change: Option<RdChange>,
    pub active: Option<bool>,
    pub nodes: Option<&'a [String]>,
    pub scope: Option<Scope>,
    pub target: Option<&'a str>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub reason: Option<&'a str>,
}

// The enum is declared by `str_enum!`, which cannot mark a `#[default]` variant.
#[allow(clippy::derivable_impls)]
impl Default for Kind {
    fn default() -> Self {
        Kind::CollectorHeartbeat
    }
}

/// One present value of a [`Fields`] view.
#[derive(Debug, Clone, Copy)]
pub enum FieldValue<'a> {
    /// Any string-valued field (enums included).
    Str(&'a str),
    /// `active`.
    Bool(bool),
    /// `start` / `end`.
    Time(DateTime<Utc>),
    /// `nodes`.
    List(&'a [String]),
}

/// Number of kind-field slots: the string-valued fields, then `active`, `start`, `end`, `nodes`.
pub(crate) const FIELD_SLOTS: usize = 22;
/// Slot of `active`.
pub(crate) const ACTIVE_SLOT: usize = 18;
/// Slot of `start`.
pub(crate) const START_SLOT: usize = 19;
/// Slot of `end`.
pub(crate) const END_SLOT: usize = 20;
/// Slot of `nodes`.
pub(crate) const NODES_SLOT: usize = 21;

/// The slot of a kind field (its position in [`Fields::for_each_value`] order; the string
/// fields are those of [`STR_FIELDS`], in its order).
pub(crate) fn field_slot(name: &str) -> Option<usize> {
    Some(match name {
        "device" => 0,
        "device_type" => 1,
        "node" => 2,
        "device_pool" => 3,
        "ctimanager" => 4,
        "cause" => 5,
        "state" => 6,
        "address" => 7,
        "call_id" => 8,
        "consult_call_id" => 9,
        "calling" => 10,
        "called" => 11,
        "transferred_to" => 12,
        "remote_destination" => 13,
        "change" => 14,
        "scope" => 15,
        "target" => 16,
        "reason" => 17,
        "active" => ACTIVE_SLOT,
        "start" => START_SLOT,
        "end" => END_SLOT,
        "nodes" => NODES_SLOT,
        _ => return None,
    })
}

/// Names of the string-valued fields, in [`Fields::for_each_value`] order.
const STR_FIELDS: [&str; 18] = [
    "device",
    "device_type",
    "node",
    "device_pool",
    "ctimanager",
    "cause",
    "state",
    "address",
    "call_id",
    "consult_call_id",
    "calling",
    "called",
    "transferred_to",
    "remote_destination",
    "change",
    "scope",
    "target",
    "reason",
];

impl<'a> Fields<'a> {
    /// The view of validated slot values: the string-valued fields in [`STR_FIELDS`] order
    /// (enum texts must be valid values of their enum), then the others.
    pub(crate) fn from_slots(
        kind: Kind,
        strs: [Option<&'a str>; 18],
        active: Option<bool>,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        nodes: Option<&'a [String]>,
    ) -> Self {
        let [
            device,
            device_type,
            node,
            device_pool,
            ctimanager,
            cause,
            state,
            address,
            call_id,
            consult_call_id,
            calling,
            called,
            transferred_to,
            remote_destination,
            change,
            scope,
            target,
            reason,
        ] = strs;
        Fields {
            kind,
            device,
            device_type: device_type.and_then(DeviceType::parse),
            node,
            device_pool,
            ctimanager,
            cause,
            state: state.and_then(|s| {
                DeviceActivity::parse(s)
                    .map(DeviceActivity::as_str)
                    .or_else(|| CallStateKind::parse(s).map(CallStateKind::as_str))
            }),
            address,
            call_id,
            consult_call_id,
            calling,
            called,
            transferred_to,
            remote_destination,
            change: change.and_then(RdChange::parse),
            active,
            nodes,
            scope: scope.and_then(Scope::parse),
            target,
            start,
            end,
            reason,
        }
    }

    /// Calls `f(position, field name, value)` for every present field, in a fixed order.
    pub fn for_each_value(&self, mut f: impl FnMut(usize, &'static str, FieldValue<'a>)) {
        let strs = [
            self.device,
            self.device_type.map(DeviceType::as_str),
            self.node,
            self.device_pool,
            self.ctimanager,
            self.cause,
            self.state,
            self.address,
            self.call_id,
            self.consult_call_id,
            self.calling,
            self.called,
            self.transferred_to,
            self.remote_destination,
            self.change.map(RdChange::as_str),
            self.scope.map(Scope::as_str),
            self.target,
            self.reason,
        ];
        for (i, (s, name)) in strs.into_iter().zip(STR_FIELDS).enumerate() {
            if let Some(s) = s {
                f(i, name, FieldValue::Str(s));
            }
        }
        if let Some(b) = self.active {
            f(18, "active", FieldValue::Bool(b));
        }
        if let Some(t) = self.start {
            f(19, "start", FieldValue::Time(t));
        }
        if let Some(t) = self.end {
            f(20, "end", FieldValue::Time(t));
        }
        if let Some(l) = self.nodes {
            f(21, "nodes", FieldValue::List(l));
        }
    }
}

impl Body {
    /// The flat view of this body.
    pub fn fields(&self) -> Fields<'_> {
        let mut f = Fields {
            kind: self.kind(),
            ..Fields::default()
        };
        match self {
            Body::ProviderInService { ctimanager } => f.ctimanager = Some(ctimanager),
            Body::ProviderOutOfService { ctimanager, cause } => {
                f.ctimanager = Some(ctimanager);
                f.cause = cause.as_ref().map(Cause::as_str);
            }
            Body::DeviceInService {
                device,
                device_type,
                node,
                device_pool,
                ctimanager,
            } => {
                f.device = Some(device);
                f.device_type = Some(*device_type);
                f.node = Some(node);
                f.device_pool = device_pool.as_deref();
                f.ctimanager = ctimanager.as_deref();
            }
            Body::DeviceOutOfService {
                device,
                cause,
                node,
            } => {
                f.device = Some(device);
                f.cause = Some(cause.as_str());
                f.node = node.as_deref();
            }
            Body::DeviceRegistrationFailed { device, cause } => {
                f.device = Some(device);
                f.cause = Some(cause.as_str());
            }
            Body::AddressInService { device, address }
            | Body::AddressOutOfService { device, address } => {
                f.device = Some(device);
                f.address = Some(address);
            }
            Body::DeviceState { device, state } => {
                f.device = Some(device);
                f.state = Some(state.as_str());
            }
            Body::RemoteDestinationChanged {
                device,
                remote_destination,
                change,
                active,
            } => {
                f.device = Some(device);
                f.remote_destination = Some(remote_destination);
                f.change = Some(*change);
                f.active = *active;
            }
            Body::CallStarted {
                call_id,
                device,
                address,
                calling,
                called,
            } => {
                f.call_id = Some(call_id);
                f.device = Some(device);
                f.address = address.as_deref();
                f.calling = calling.as_deref();
                f.called = called.as_deref();
            }
            Body::CallState {
                call_id,
                device,
                state,
            } => {
                f.call_id = Some(call_id);
                f.device = Some(device);
                f.state = Some(state.as_str());
            }
            Body::CallEnded {
                call_id,
                device,
                cause,
            } => {
                f.call_id = Some(call_id);
                f.device = Some(device);
                f.cause = Some(cause.as_str());
            }
            Body::TransferCompleted {
                call_id,
                consult_call_id,
                device,
                transferred_to,
            } => {
                f.call_id = Some(call_id);
                f.consult_call_id = Some(consult_call_id);
                f.device = Some(device);
                f.transferred_to = transferred_to.as_deref();
            }
            Body::NodeDown { node, cause } | Body::NodeUp { node, cause } => {
                f.node = Some(node);
                f.cause = cause.as_ref().map(Cause::as_str);
            }
            Body::DevicePoolConfig { device_pool, nodes } => {
                f.device_pool = Some(device_pool);
                f.nodes = Some(nodes);
            }
            Body::MaintenanceWindow {
                scope,
                target,
                start,
                end,
                reason,
            } => {
                f.scope = Some(*scope);
                f.target = Some(target);
                f.start = Some(*start);
                f.end = Some(*end);
                f.reason = Some(reason);
            }
            Body::CollectorHeartbeat => {}
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_slots_follow_the_view_order() {
        for (i, name) in STR_FIELDS.iter().enumerate() {
            assert_eq!(field_slot(name), Some(i), "{name}");
        }
        let mut seen = Vec::new();
        let f = Fields {
            active: Some(true),
            start: Some(DateTime::UNIX_EPOCH),
            end: Some(DateTime::UNIX_EPOCH),
            nodes: Some(&[]),
            ..Fields::default()
        };
        f.for_each_value(|i, name, _| seen.push((i, field_slot(name))));
        assert_eq!(
            seen,
            [ACTIVE_SLOT, START_SLOT, END_SLOT, NODES_SLOT].map(|s| (s, Some(s)))
        );
        assert_eq!(field_slot("source"), None);
    }
}
