//! CDR records to v1 events (`cucm-sources.md` §3.6, §3.7): per record `call_started`,
//! `call_state` and `call_ended` for both devices, and a `transfer_completed` when a final
//! record (`joinOnBehalfOf` = Transfer) meets the two records its transfer split off. Each
//! event's number within its row is fixed, so a re-delivered file yields identical events.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, json};

use callstate_schemas::{Body, CallStateKind, Cause};

use super::codes::{
    CAUSE_CALL_SPLIT, ON_BEHALF_MONITORING, ON_BEHALF_RECORDING, ON_BEHALF_TRANSFER, cause_name,
    is_failure,
};
use super::record::Record;
use crate::tracker::Pending;

/// Events a row may produce, at most (the sequence-number layout: row × 16 + index).
pub const EVENTS_PER_ROW: u64 = 16;

/// Records split off by a transfer, waiting for their final record (by leg id).
#[derive(Debug, Default)]
pub struct Splits {
    by_leg: HashMap<i64, Vec<Record>>,
}

impl Splits {
    /// Remembers a split record.
    pub fn add(&mut self, r: &Record) {
        for leg in [r.orig_leg, r.dest_leg] {
            if leg != 0 {
                self.by_leg.entry(leg).or_default().push(r.clone());
            }
        }
    }

    /// Forgets split records that ended before `before`.
    pub fn expire(&mut self, before: DateTime<Utc>) {
        self.by_leg.retain(|_, v| {
            v.retain(|r| r.disconnect >= before);
            !v.is_empty()
        });
    }

    /// Split records waiting.
    pub fn len(&self) -> usize {
        self.by_leg.values().map(Vec::len).sum()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.by_leg.is_empty()
    }

    /// The original and consultation records of a final transfer record.
    fn pair(&self, f: &Record) -> Option<(Record, Record)> {
        let mut found: Vec<&Record> = Vec::new();
        for leg in [f.orig_leg, f.dest_leg] {
            for r in self.by_leg.get(&leg).into_iter().flatten() {
                if !found.iter().any(|x| x.call_id() == r.call_id()) {
                    found.push(r);
                }
            }
        }
        if found.len() != 2 {
            return None;
        }
        found.sort_by_key(|r| (r.origination, r.global_call_id));
        Some((found[0].clone(), found[1].clone()))
    }
}

/// Whether a record is one side of a transfer: split on both sides on behalf of Transfer.
pub fn is_split(r: &Record) -> bool {
    r.orig_cause == CAUSE_CALL_SPLIT
        && r.dest_cause == CAUSE_CALL_SPLIT
        && r.orig_term_on_behalf == ON_BEHALF_TRANSFER
        && r.dest_term_on_behalf == ON_BEHALF_TRANSFER
}

/// The events of one record, each with its index within the row; `splits` holds the split
/// records seen so far (this one is added when it is one).
pub fn events(r: &Record, splits: &mut Splits) -> Vec<(u64, Pending)> {
    let mut out = Vec::new();
    if r.on_behalf()
        .iter()
        .any(|&v| v == ON_BEHALF_RECORDING || v == ON_BEHALF_MONITORING)
    {
        return out;
    }
    let call_id = r.call_id();
    let extra = |ip: &Option<std::net::IpAddr>| {
        let mut m = Map::new();
        m.insert("global_call_id".into(), json!(r.global_call_id));
        if let Some(ip) = ip {
            m.insert("ip".into(), json!(ip.to_string()));
        }
        m
    };
    let dest = (!r.dest_device.is_empty()).then_some(&r.dest_device);
    let mut push =
        |i: u64, time: DateTime<Utc>, body: Body, extra: Map<String, serde_json::Value>| {
            out.push((i, Pending { time, body, extra }));
        };
    push(
        0,
        r.origination,
        Body::CallStarted {
            call_id: call_id.clone(),
            device: r.orig_device.clone(),
            address: Some(r.calling.clone()).filter(|s| !s.is_empty()),
            calling: Some(r.calling.clone()).filter(|s| !s.is_empty()),
            called: Some(r.original_called.clone()).filter(|s| !s.is_empty()),
        },
        extra(&r.orig_ip),
    );
    if let Some(d) = dest {
        push(
            1,
            r.origination,
            Body::CallStarted {
                call_id: call_id.clone(),
                device: d.clone(),
                address: Some(r.final_called.clone()).filter(|s| !s.is_empty()),
                calling: Some(r.calling.clone()).filter(|s| !s.is_empty()),
                called: Some(r.final_called.clone()).filter(|s| !s.is_empty()),
            },
            extra(&r.dest_ip),
        );
    }
    let cause_value = if r.orig_cause != 0 {
        r.orig_cause
    } else {
        r.dest_cause
    };
    match r.connect {
        Some(at) => {
            push(
                2,
                at,
                Body::CallState {
                    call_id: call_id.clone(),
                    device: r.orig_device.clone(),
                    state: CallStateKind::Connected,
                },
                Map::new(),
            );
            if let Some(d) = dest {
                push(
                    3,
                    at,
                    Body::CallState {
                        call_id: call_id.clone(),
                        device: d.clone(),
                        state: CallStateKind::Connected,
                    },
                    Map::new(),
                );
            }
        }
        None if is_failure(cause_value) => {
            push(
                4,
                r.disconnect,
                Body::CallState {
                    call_id: call_id.clone(),
                    device: r.orig_device.clone(),
                    state: CallStateKind::Failed,
                },
                Map::new(),
            );
        }
        None => {}
    }
    let cause = Cause::parse(&cause_name(cause_value));
    let mut end_extra = Map::new();
    end_extra.insert("cause_value".into(), json!(cause_value));
    push(
        5,
        r.disconnect,
        Body::CallEnded {
            call_id: call_id.clone(),
            device: r.orig_device.clone(),
            cause: cause.clone(),
        },
        end_extra.clone(),
    );
    if let Some(d) = dest {
        push(
            6,
            r.disconnect,
            Body::CallEnded {
                call_id: call_id.clone(),
                device: d.clone(),
                cause,
            },
            end_extra,
        );
    }
    if is_split(r) {
        splits.add(r);
    }
    if r.join_on_behalf == ON_BEHALF_TRANSFER
        && let Some((original, consult)) = splits.pair(r)
    {
        // the controller is the device on the original's leg that is not in the final record
        let controller = if original.orig_leg == r.orig_leg || original.orig_leg == r.dest_leg {
            original.dest_device.clone()
        } else {
            original.orig_device.clone()
        };
        let target_device = if consult.dest_leg == r.orig_leg || consult.dest_leg == r.dest_leg {
            consult.dest_device.clone()
        } else {
            consult.orig_device.clone()
        };
        let mut m = Map::new();
        m.insert("final_call_id".into(), json!(call_id));
        m.insert("target_device".into(), json!(target_device));
        m.insert("consultative".into(), json!(consult.duration > 0));
        push(
            7,
            original.disconnect,
            Body::TransferCompleted {
                call_id: original.call_id(),
                consult_call_id: consult.call_id(),
                device: controller,
                transferred_to: Some(consult.final_called.clone()).filter(|s| !s.is_empty()),
            },
            m,
        );
    }
    out
}
