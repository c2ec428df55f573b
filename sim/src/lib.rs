//! Deterministic CUCM/CTI event generation. For now: a synthetic stream for log tests; the
//! cluster simulator with failure injection and ground truth comes next.

#![warn(missing_docs)]

pub mod synthetic;
