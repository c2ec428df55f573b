//! Parsing and validation of one v1 event from JSON, with errors that name the field.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::event::{
    ACTIVE_SLOT, Body, CallStateKind, Cause, DeviceActivity, DeviceType, END_SLOT, Event,
    EventView, FIELD_SLOTS, Fields, Kind, NODES_SLOT, RdChange, START_SLOT, Scope, field_slot,
};
use crate::spec::{FieldType, kind_spec};
use crate::time::{parse_time, parse_time_us};

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

/// A JSON object as (key, value text) pairs, in input order, borrowing from the input.
/// Every value text is one complete, valid JSON value.
struct RawObject<'a>(Vec<(Cow<'a, str>, &'a str)>);

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
                    pairs.push((k, v.get()));
                }
                Ok(RawObject(pairs))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> RawObject<'a> {
    /// Splits one JSON object into its pairs: the flat scanner for the common shape, else
    /// serde_json (which also words the error of a line that is not a JSON object).
    fn parse(text: &'a str) -> Result<Self, ValidationError> {
        if let Some(pairs) = flat::scan(text) {
            return Ok(RawObject(pairs));
        }
        serde_json::from_str::<RawObject<'_>>(text).map_err(|e| {
            if e.is_data() {
                ValidationError::line(format!("expected a JSON object (one event): {e}"))
            } else {
                ValidationError::line(format!("invalid JSON: {e}"))
            }
        })
    }
}

/// A scanner for the shape bridges send: one flat object whose keys and string values hold
/// no escapes or control characters and whose other values are non-negative integers,
/// `true`, `false`, `null` or arrays of such strings. It accepts only valid JSON and yields
/// exactly what serde_json would; anything else is left to serde_json (`None`).
mod flat {
    use std::borrow::Cow;

    fn ws(b: &[u8], mut i: usize) -> usize {
        while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            i += 1;
        }
        i
    }

    /// The position of the first `"`, `\\` or control character of `b`.
    fn special(b: &[u8]) -> Option<usize> {
        // Eight bytes at a time: a byte is special when it equals `"` or `\\` or is below
        // 0x20 (the classic "has a zero byte" bit trick on each condition).
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let mut i = 0;
        while i + 8 <= b.len() {
            let x = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
            let zero = |y: u64| y.wrapping_sub(ONES) & !y & HIGH;
            let hit = zero(x ^ (ONES * u64::from(b'"')))
                | zero(x ^ (ONES * u64::from(b'\\')))
                | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
            if hit != 0 {
                break;
            }
            i += 8;
        }
        b[i..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .map(|p| i + p)
    }

    /// The content range of the string starting at `b[i] == '"'`.
    fn string(b: &[u8], i: usize) -> Option<(usize, usize)> {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let end = special(&b[i + 1..])?;
        (b[i + 1 + end] == b'"').then_some((i + 1, i + 1 + end))
    }

    /// The end of the value starting at `b[i]`.
    fn value(b: &[u8], i: usize) -> Option<usize> {
        match *b.get(i)? {
            b'"' => string(b, i).map(|(_, e)| e + 1),
            b'0' => Some(i + 1),
            b'1'..=b'9' => Some(i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count()),
            b't' => b[i..].starts_with(b"true").then_some(i + 4),
            b'f' => b[i..].starts_with(b"false").then_some(i + 5),
            b'n' => b[i..].starts_with(b"null").then_some(i + 4),
            b'[' => {
                let mut j = ws(b, i + 1);
                if b.get(j) == Some(&b']') {
                    return Some(j + 1);
                }
                loop {
                    j = ws(b, string(b, j)?.1 + 1);
                    match b.get(j)? {
                        b',' => j = ws(b, j + 1),
                        b']' => return Some(j + 1),
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }

    /// The object's pairs, or `None` when the text is not of the flat shape.
    pub(super) fn scan(text: &str) -> Option<Vec<(Cow<'_, str>, &str)>> {
        let b = text.as_bytes();
        let mut i = ws(b, 0);
        if b.get(i) != Some(&b'{') {
            return None;
        }
        i = ws(b, i + 1);
        let mut pairs = Vec::with_capacity(12);
        if b.get(i) == Some(&b'}') {
            return (ws(b, i + 1) == b.len()).then_some(pairs);
        }
        loop {
            let (ks, ke) = string(b, i)?;
            i = ws(b, ke + 1);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = ws(b, i + 1);
            let end = value(b, i)?;
            pairs.push((Cow::Borrowed(&text[ks..ke]), &text[i..end]));
            i = ws(b, end);
            match b.get(i)? {
                b',' => i = ws(b, i + 1),
                b'}' => return (ws(b, i + 1) == b.len()).then_some(pairs),
                _ => return None,
            }
        }
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

fn parse_str<'a>(name: &str, text: &'a str) -> Result<Cow<'a, str>, ValidationError> {
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
    // (A first character that is visible ASCII settles it without scanning the rest.)
    if !s.as_bytes().first().is_some_and(u8::is_ascii_graphic) && s.trim().is_empty() {
        return Err(ValidationError::field(name, "must not be empty"));
    }
    Ok(s)
}

fn parse_u64(name: &str, text: &str) -> Result<u64, ValidationError> {
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

/// A kind field's value as parsed, borrowing from the input where it can.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Str(Cow<'a, str>),
    Time(DateTime<Utc>),
    Bool(bool),
    List(Vec<String>),
}

impl Val<'_> {
    fn into_parsed(self) -> Parsed {
        match self {
            Val::Str(s) => Parsed::Str(s.into_owned()),
            Val::Time(t) => Parsed::Time(t),
            Val::Bool(b) => Parsed::Bool(b),
            Val::List(l) => Parsed::List(l),
        }
    }
}

fn parse_typed<'a>(name: &str, ty: FieldType, text: &'a str) -> Result<Val<'a>, ValidationError> {
    match ty {
        FieldType::Str | FieldType::OpenEnum(_) => Ok(Val::Str(parse_str(name, text)?)),
        FieldType::Enum(allowed) => {
            let s = parse_str(name, text)?;
            if allowed.contains(&s.as_ref()) {
                Ok(Val::Str(s))
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
            let s = parse_str(name, text)?;
            parse_time(&s)
                .map(Val::Time)
                .map_err(|e| ValidationError::field(name, e.to_string()))
        }
        FieldType::Bool => match text {
            "true" => Ok(Val::Bool(true)),
            "false" => Ok(Val::Bool(false)),
            other => Err(ValidationError::field(
                name,
                format!("expected true or false, got {}", json_type(other)),
            )),
        },
        FieldType::StrList => {
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
                let s = parse_str(&format!("{name}[{i}]"), item.get())?;
                out.push(s.into_owned());
            }
            Ok(Val::List(out))
        }
        FieldType::U64 => unreachable!("no kind field is an integer"),
    }
}

/// A maintenance window must end after it starts.
fn window_order(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), ValidationError> {
    if end <= start {
        return Err(ValidationError::field("end", "must be after `start`"));
    }
    Ok(())
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
                window_order(start, end)?;
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

/// Envelope keys, in [`ParsedEvent::parse`]'s slot order.
const ENVELOPE_KEYS: [&str; 5] = ["source", "seq", "time", "cluster", "kind"];

/// Where a key goes: an envelope slot, a kind-field slot ([`field_slot`]), or neither.
enum Slot {
    Envelope(usize),
    Field(usize),
    Unknown,
}

fn slot_of(key: &str) -> Slot {
    match key {
        "source" => Slot::Envelope(0),
        "seq" => Slot::Envelope(1),
        "time" => Slot::Envelope(2),
        "cluster" => Slot::Envelope(3),
        "kind" => Slot::Envelope(4),
        _ => field_slot(key).map_or(Slot::Unknown, Slot::Field),
    }
}

/// One validated event as parsed, borrowing its strings from the input where it can.
///
/// [`ParsedEvent::view`] feeds the batch builder and the content hash without copying;
/// [`ParsedEvent::into_event`] makes the owned [`Event`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedEvent<'a> {
    source: Cow<'a, str>,
    seq: u64,
    /// Event time, microseconds since the epoch.
    time_us: i64,
    cluster: Cow<'a, str>,
    kind: Kind,
    /// Kind fields by [`field_slot`].
    vals: [Option<Val<'a>>; FIELD_SLOTS],
    extra: Option<String>,
}

impl<'a> ParsedEvent<'a> {
    /// Parses and validates one event from JSON text; see [`Event::from_json`].
    pub fn parse(text: &'a str, now: DateTime<Utc>) -> Result<Self, ValidationError> {
        let RawObject(pairs) = RawObject::parse(text)?;
        // Values by slot (`null` counts as absent); every key is checked for repeats.
        let mut envelope: [Option<&str>; 5] = [None; 5];
        let mut fields: [Option<&str>; FIELD_SLOTS] = [None; FIELD_SLOTS];
        let mut seen = 0u64;
        let mut unknown: Vec<usize> = Vec::new();
        for (i, (k, v)) in pairs.iter().enumerate() {
            let (bit, value) = match slot_of(k) {
                Slot::Envelope(e) => (e, &mut envelope[e]),
                Slot::Field(f) => (ENVELOPE_KEYS.len() + f, &mut fields[f]),
                Slot::Unknown => {
                    if unknown.iter().any(|&j| pairs[j].0 == *k) {
                        return Err(ValidationError::field(k, "appears more than once"));
                    }
                    unknown.push(i);
                    continue;
                }
            };
            if seen & (1 << bit) != 0 {
                return Err(ValidationError::field(k, "appears more than once"));
            }
            seen |= 1 << bit;
            *value = (*v != "null").then_some(*v);
        }
        let req = |slot: usize| envelope[slot].ok_or_else(|| Bag::missing(ENVELOPE_KEYS[slot]));

        let kind_text = parse_str("kind", req(4)?)?;
        let kind = Kind::parse(&kind_text)
            .ok_or_else(|| ValidationError::field("kind", format!("unknown kind `{kind_text}`")))?;
        let source = parse_str("source", req(0)?)?;
        let seq = parse_u64("seq", req(1)?)?;
        let time_text = parse_str("time", req(2)?)?;
        let time_us =
            parse_time_us(&time_text).map_err(|e| ValidationError::field("time", e.to_string()))?;
        if time_us > (now + MAX_FUTURE).timestamp_micros() {
            return Err(ValidationError::field(
                "time",
                format!(
                    "{time_text} is more than 24 h in the future of ingest time {}",
                    crate::time::format_time(&now)
                ),
            ));
        }
        let cluster = parse_str("cluster", req(3)?)?;

        let spec = kind_spec(kind);
        let mut vals: [Option<Val<'a>>; FIELD_SLOTS] = Default::default();
        let mut own = 0u64;
        for f in spec.fields {
            let slot = field_slot(f.name).expect("every kind field has a slot");
            own |= 1 << slot;
            match fields[slot] {
                Some(text) => vals[slot] = Some(parse_typed(f.name, f.ty, text)?),
                None if f.required => return Err(Bag::missing(f.name)),
                None => {}
            }
        }
        if let (Some(Val::Time(start)), Some(Val::Time(end))) = (&vals[START_SLOT], &vals[END_SLOT])
        {
            window_order(*start, *end)?;
        }

        // Unknown keys, and fields of other kinds, are kept verbatim (keys sorted). Most
        // events have neither, and skip the pass.
        let mut extra = serde_json::Map::new();
        let foreign = (seen >> ENVELOPE_KEYS.len()) & !own;
        if !unknown.is_empty() || foreign != 0 {
            for (k, v) in &pairs {
                let known = match slot_of(k) {
                    Slot::Envelope(_) => true,
                    Slot::Field(f) => own & (1 << f) != 0,
                    Slot::Unknown => false,
                };
                if !known {
                    let value: serde_json::Value = serde_json::from_str(v)
                        .map_err(|e| ValidationError::field(k, e.to_string()))?;
                    extra.insert(k.to_string(), value);
                }
            }
        }
        let extra = (!extra.is_empty())
            .then(|| serde_json::to_string(&extra).expect("a JSON map serializes"));
        Ok(ParsedEvent {
            source,
            seq,
            time_us,
            cluster,
            kind,
            vals,
            extra,
        })
    }

    /// The flat, borrowed view of this event.
    pub fn view(&self) -> EventView<'_> {
        let str_at = |slot: usize| match &self.vals[slot] {
            Some(Val::Str(s)) => Some(s.as_ref()),
            _ => None,
        };
        let time_at = |slot: usize| match &self.vals[slot] {
            Some(Val::Time(t)) => Some(*t),
            _ => None,
        };
        let fields = Fields::from_slots(
            self.kind,
            std::array::from_fn(str_at),
            match &self.vals[ACTIVE_SLOT] {
                Some(Val::Bool(b)) => Some(*b),
                _ => None,
            },
            time_at(START_SLOT),
            time_at(END_SLOT),
            match &self.vals[NODES_SLOT] {
                Some(Val::List(l)) => Some(l.as_slice()),
                _ => None,
            },
        );
        EventView {
            source: &self.source,
            seq: self.seq,
            time_us: self.time_us,
            cluster: &self.cluster,
            fields,
            extra: self.extra.as_deref(),
        }
    }

    /// The owned event.
    pub fn into_event(self) -> Event {
        let mut bag = Bag::default();
        for f in kind_spec(self.kind).fields {
            let slot = field_slot(f.name).expect("every kind field has a slot");
            if let Some(v) = self.vals[slot].clone() {
                bag.put(f.name, v.into_parsed());
            }
        }
        let body = bag
            .into_body(self.kind)
            .expect("a validated event has every field of its kind");
        Event {
            source: self.source.into_owned(),
            seq: self.seq,
            time: DateTime::from_timestamp_micros(self.time_us).expect("parsed in range"),
            cluster: self.cluster.into_owned(),
            body,
            extra: self.extra,
        }
    }
}

impl Event {
    /// Parses and validates one event from JSON text.
    ///
    /// `now` is the ingest time used for the "not more than 24 h in the future" check.
    /// Unknown fields (including fields of other kinds) are kept in `extra`; `null` counts as
    /// absent.
    pub fn from_json(text: &str, now: DateTime<Utc>) -> Result<Event, ValidationError> {
        ParsedEvent::parse(text, now).map(ParsedEvent::into_event)
    }
}
