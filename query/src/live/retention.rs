//! The horizon of the retention of call legs, kept in the checkpoint of the legs and in
//! every view of the live state.

use callstate_schemas::Us;

/// What retention of call legs removed: every leg that started and ended before `kept_from`
/// (so the legs active or hit at any instant from `kept_from` on are all kept, as
/// are the legs a question bounded to calls started from then reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LegsRetention {
    /// The horizon.
    pub kept_from: Us,
    /// Legs removed so far (over every checkpoint that moved the horizon).
    pub removed: u64,
}

impl LegsRetention {
    /// Whether a leg from `start` to `end` is removed at this horizon.
    pub(super) fn removes(kept_from: Us, start: Us, end: Us) -> bool {
        start < kept_from && end < kept_from
    }
}
