//! Parsing and validation of one v1 event from JSON, with errors that name the field.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::event::{
    Body, CallStateKind, Cause, DeviceActivity, DeviceType, Event, Kind, RdChange, Scope,
};
use crate::spec::{ENVELOPE, FieldType, kind_spec};

/// How far in the future of ingest time an event time may be.
pub const MAX_FUTURE: Duration = Duration::hours(24);

/// Why an event was rejected: the field at fault (if any) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The offending field, or `None` for whole-line problems (bad JSON, not an object).
    pub field: Option<String>,
    /// Human-readable reason.
    pub reason: String,
}

impl ValidationError {
    /// An error about one field.
    pub fn field(field: &str, reason: impl Into<String>) -> Self {
        ValidationError {
            field: Some(field.to_string()),
            reason: reason.into(),
        }
    }
    /// An error about the whole line.
    pub fn line(reason: impl Into<String>) -> Self {
        ValidationError {
            field: None,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "field `{field}`: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for ValidationError {}

/// A JSON object as (key, raw value) pairs, in input order, borrowing from the input.
struct RawObject<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object (one event)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    let v: &'de RawValue = map.next_value()?;
                    pairs.push((k, v));
                }
                Ok(RawObject(pairs))
            }
        }
        d.deserialize_map(V)
    }
}

/// Describes a raw JSON value's type for error messages.
fn json_type(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// A typed field value as parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parsed {
    Str(String),
    Time(DateTime<Utc>),
    Bool(bool),
    List(Vec<String>),
}

fn parse_str<'a>(name: &str, raw: &'a RawValue) -> Result<Cow<'a, str>, ValidationError> {
    let text = raw.get();
    if !text.starts_with('"') {
        return Err(ValidationError::field(
            name,
            format!("expected a string, got {}", json_type(text)),
        ));
    }
    let s: Cow<'a, str> = if text.contains('\\') {
        Cow::Owned(
            serde_json::from_str::<String>(text)
                .map_err(|e| ValidationError::field(name, e.to_string()))?,
        )
    } else {
        Cow::Borrowed(&text[1..text.len() - 1])
    };
    if s.trim().is_empty() {
        return Err(ValidationError::field(name, "must not be empty"));
    }
    Ok(s)
}

fn parse_u64(name: &str, raw: &RawValue) -> Result<u64, ValidationError> {
    let text = raw.get();
    if json_type(text) != "a number" {
        return Err(ValidationError::field(
            name,
            format!("expected a non-negative integer, got {}", json_type(text)),
        ));
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValidationError::field(
            name,
            format!("expected a non-negative integer, got {text}"),
        ));
    }
    text.parse::<u64>().map_err(|_| {
        ValidationError::field(
            name,
            format!("{text} is out of range for an unsigned 64-bit integer"),
        )
    })
}

/// Parses an RFC 3339 timestamp (offset required), truncated to microseconds, in UTC.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let dt = DateTime::parse_from_rfc3339(text).map_err(|e| {
        format!("`{text}` is not an RFC 3339 timestamp with offset (e.g. 2026-11-24T10:00:00.123456Z): {e}")
    })?;
    DateTime::from_timestamp_micros(dt.timestamp_micros())
        .ok_or_else(|| format!("`{text}` is out of range"))
}

fn parse_typed(name: &str, ty: FieldType, raw: &RawValue) -> Result<Parsed, ValidationError> {
    match ty {
        FieldType::Str | FieldType::OpenEnum(_) => {
            Ok(Parsed::Str(parse_str(name, raw)?.into_owned()))
        }
        FieldType::Enum(allowed) => {
            let s = parse_str(name, raw)?;
            if allowed.contains(&s.as_ref()) {
                Ok(Parsed::Str(s.into_owned()))
            } else {
                Err(ValidationError::field(
                    name,
                    format!(
                        "unknown value `{s}`; expected one of: {}",
                        allowed.join(", ")
                    ),
                ))
            }
        }
        FieldType::Time => {
            let s = parse_str(name, raw)?;
            parse_time(&s)
                .map(Parsed::Time)
                .map_err(|e| ValidationError::field(name, e))
        }
        FieldType::Bool => match raw.get() {
            "true" => Ok(Parsed::Bool(true)),
            "false" => Ok(Parsed::Bool(false)),
            other => Err(ValidationError::field(
                name,
                format!("expected true or false, got {}", json_type(other)),
            )),
        },
        FieldType::StrList => {
            let text = raw.get();
            if !text.starts_with('[') {
                return Err(ValidationError::field(
                    name,
                    format!("expected an array of strings, got {}", json_type(text)),
                ));
            }
            let items: Vec<&RawValue> = serde_json::from_str(text)
                .map_err(|e| ValidationError::field(name, e.to_string()))?;
            if items.is_empty() {
                return Err(ValidationError::field(name, "must not be empty"));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let s = parse_str(&format!("{name}[{i}]"), item)?;
                out.push(s.into_owned());
            }
            Ok(Parsed::List(out))
        }
        FieldType::U64 => unreachable!("no kind field is an integer"),
    }
}

/// Field values by name, from which a [`Body`] is built.
#[derive(Debug, Default)]
pub(crate) struct Bag {
    vals: Vec<(&'static str, Parsed)>,
}

impl Bag {
    pub(crate) fn put(&mut self, name: &'static str, v: Parsed) {
        self.vals.push((name, v));
    }
    fn take(&mut self, name: &str) -> Option<Parsed> {
        let i = self.vals.iter().position(|(n, _)| *n == name)?;
        Some(self.vals.swap_remove(i).1)
    }
    fn missing(name: &str) -> ValidationError {
        ValidationError::field(name, "required field is missing")
    }
    fn opt_str(&mut self, name: &str) -> Option<String> {
        match self.take(name) {
            Some(Parsed::Str(s)) => Some(s),
            _ => None,
        }
    }
    fn str(&mut self, name: &str) -> Result<String, ValidationError> {
        self.opt_str(name).ok_or_else(|| Self::missing(name))
    }
    fn time(&mut self, name: &str) -> Result<DateTime<Utc>, ValidationError> {
        match self.take(name) {
            Some(Parsed::Time(t)) => Ok(t),
            _ => Err(Self::missing(name)),
        }
    }
    fn opt_bool(&mut self, name: &str) -> Option<bool> {
        match self.take(name) {
            Some(Parsed::Bool(b)) => Some(b),
            _ => None,
        }
    }
    fn list(&mut self, name: &str) -> Result<Vec<String>, ValidationError> {
        match self.take(name) {
            Some(Parsed::List(l)) => Ok(l),
            _ => Err(Self::missing(name)),
        }
    }
    fn closed<T>(
        &mut self,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, ValidationError> {
        let s = self.str(name)?;
        parse(&s).ok_or_else(|| ValidationError::field(name, format!("unknown value `{s}`")))
    }

    /// Builds the body of `kind` from the values present.
    pub(crate) fn into_body(mut self, kind: Kind) -> Result<Body, ValidationError> {
        let b = &mut self;
        Ok(match kind {
            Kind::ProviderInService => Body::ProviderInService {
                ctimanager: b.str("ctimanager")?,
            },
            Kind::ProviderOutOfService => Body::ProviderOutOfService {
                ctimanager: b.str("ctimanager")?,
                cause: b.opt_str("cause").map(|s| Cause::parse(&s)),
            },
            Kind::DeviceInService => Body::DeviceInService {
                device: b.str("device")?,
                device_type: b.closed("device_type", DeviceType::parse)?,
                node: b.str("node")?,
                device_pool: b.opt_str("device_pool"),
                ctimanager: b.opt_str("ctimanager"),
            },
            Kind::DeviceOutOfService => Body::DeviceOutOfService {
                device: b.str("device")?,
                cause: Cause::parse(&b.str("cause")?),
                node: b.opt_str("node"),
            },
            Kind::DeviceRegistrationFailed => Body::DeviceRegistrationFailed {
                device: b.str("device")?,
                cause: Cause::parse(&b.str("cause")?),
            },
            Kind::AddressInService => Body::AddressInService {
                device: b.str("device")?,
                address: b.str("address")?,
            },
            Kind::AddressOutOfService => Body::AddressOutOfService {
                device: b.str("device")?,
                address: b.str("address")?,
            },
            Kind::DeviceState => Body::DeviceState {
                device: b.str("device")?,
                state: b.closed("state", DeviceActivity::parse)?,
            },
            Kind::RemoteDestinationChanged => Body::RemoteDestinationChanged {
                device: b.str("device")?,
                remote_destination: b.str("remote_destination")?,
                change: b.closed("change", RdChange::parse)?,
                active: b.opt_bool("active"),
            },
            Kind::CallStarted => Body::CallStarted {
                call_id: b.str("call_id")?,
                device: b.str("device")?,
                address: b.opt_str("address"),
                calling: b.opt_str("calling"),
                called: b.opt_str("called"),
            },
            Kind::CallState => Body::CallState {
                call_id: b.str("call_id")?,
                device: b.str("device")?,
                state: b.closed("state", CallStateKind::parse)?,
            },
            Kind::CallEnded => Body::CallEnded {
                call_id: b.str("call_id")?,
                device: b.str("device")?,
                cause: Cause::parse(&b.str("cause")?),
            },
            Kind::TransferCompleted => Body::TransferCompleted {
                call_id: b.str("call_id")?,
                consult_call_id: b.str("consult_call_id")?,
                device: b.str("device")?,
                transferred_to: b.opt_str("transferred_to"),
            },
            Kind::NodeDown => Body::NodeDown {
                node: b.str("node")?,
                cause: b.opt_str("cause").map(|s| Cause::parse(&s)),
            },
            Kind::NodeUp => Body::NodeUp {
                node: b.str("node")?,
                cause: b.opt_str("cause").map(|s| Cause::parse(&s)),
            },
            Kind::DevicePoolConfig => Body::DevicePoolConfig {
                device_pool: b.str("device_pool")?,
                nodes: b.list("nodes")?,
            },
            Kind::MaintenanceWindow => {
                let scope = b.closed("scope", Scope::parse)?;
                let target = b.str("target")?;
                let start = b.time("start")?;
                let end = b.time("end")?;
                if end <= start {
                    return Err(ValidationError::field("end", "must be after `start`"));
                }
                Body::MaintenanceWindow {
                    scope,
                    target,
                    start,
                    end,
                    reason: b.str("reason")?,
                }
            }
            Kind::CollectorHeartbeat => Body::CollectorHeartbeat,
        })
    }
}

impl Event {
    /// Parses and validates one event from JSON text.
    ///
    /// `now` is the ingest time used for the "not more than 24 h in the future" check.
    /// Unknown fields (including fields of other kinds) are kept in `extra`; `null` counts as
    /// absent.
    pub fn from_json(text: &str, now: DateTime<Utc>) -> Result<Event, ValidationError> {
        let RawObject(pairs) = serde_json::from_str::<RawObject<'_>>(text).map_err(|e| {
            if e.is_data() {
                ValidationError::line(format!("expected a JSON object (one event): {e}"))
            } else {
                ValidationError::line(format!("invalid JSON: {e}"))
            }
        })?;
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(p, _)| p == k) {
                return Err(ValidationError::field(k, "appears more than once"));
            }
        }
        let get = |name: &str| -> Option<&RawValue> {
            pairs
                .iter()
                .find(|(k, v)| k == name && v.get() != "null")
                .map(|(_, v)| *v)
        };
        let req = |name: &str| get(name).ok_or_else(|| Bag::missing(name));

        let kind_text = parse_str("kind", req("kind")?)?;
        let kind = Kind::parse(&kind_text)
            .ok_or_else(|| ValidationError::field("kind", format!("unknown kind `{kind_text}`")))?;
        let source = parse_str("source", req("source")?)?.into_owned();
        let seq = parse_u64("seq", req("seq")?)?;
        let time_text = parse_str("time", req("time")?)?;
        let time = parse_time(&time_text).map_err(|e| ValidationError::field("time", e))?;
        if time > now + MAX_FUTURE {
            return Err(ValidationError::field(
                "time",
                format!(
                    "{time_text} is more than 24 h in the future of ingest time {}",
                    crate::event::format_time(&now)
                ),
            ));
        }
        let cluster = parse_str("cluster", req("cluster")?)?.into_owned();

        let spec = kind_spec(kind);
        let mut bag = Bag::default();
        for f in spec.fields {
            match get(f.name) {
                Some(raw) => bag.put(f.name, parse_typed(f.name, f.ty, raw)?),
                None if f.required => return Err(Bag::missing(f.name)),
                None => {}
            }
        }
        let body = bag.into_body(kind)?;

        let is_known = |k: &str| {
            ENVELOPE.iter().any(|f| f.name == k) || spec.fields.iter().any(|f| f.name == k)
        };
        let mut extra = serde_json::Map::new();
        for (k, v) in &pairs {
            if !is_known(k) {
                let value: serde_json::Value = serde_json::from_str(v.get())
                    .map_err(|e| ValidationError::field(k, e.to_string()))?;
                extra.insert(k.to_string(), value);
            }
        }
        let extra = (!extra.is_empty())
            .then(|| serde_json::to_string(&extra).expect("a JSON map serializes"));
        Ok(Event {
            source,
            seq,
            time,
            cluster,
            body,
            extra,
        })
    }
}
