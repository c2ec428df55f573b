//! A device's time over a span in a form that adds up: the [`Tally`] of two adjacent spans,
//! joined, is the tally of their union, an outage across the seam counted once. Whole-window
//! availability is then the same whether it is read from intervals in one go or summed from
//! hourly rollups with the partial edges read from intervals ([`rollup`](super::rollup)).
//!
//! Everything is kept in integer microseconds, so the sum of pieces is exact; seconds as
//! `f64` are made once, at the end ([`Tally::seconds`]).

use std::borrow::Borrow;

use callstate_schemas::{ServiceState, Us};

use super::availability::{Seconds, covers};
use super::intervals::ServiceInterval;
use super::rows::MaintenanceRow;

const US: f64 = 1_000_000.0;

/// One device's time over a span, µs.
///
/// An *outage* is a maximal run of out-of-service time not excluded by a maintenance window
/// (consecutive out-of-service intervals join). Runs touching the span's ends are kept apart
/// (`lead`, `trail`) so that the next span's leading run can continue them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Length of the span.
    pub span: Us,
    /// In service, not excluded.
    pub in_service: Us,
    /// Out of service, not excluded.
    pub out_of_service: Us,
    /// Inside a maintenance window covering the device (any state).
    pub excluded: Us,
    /// The outage run starting at the span's start (0: none); `span` when the whole span is
    /// one outage.
    lead: Us,
    /// The outage run ending at the span's end (0: none); equals `lead` when whole.
    trail: Us,
    /// Outages touching neither end: count, summed length, longest.
    inner: u64,
    inner_total: Us,
    inner_longest: Us,
}

impl Tally {
    /// A span of `span` µs spent wholly in `state`, nothing excluded.
    pub fn pure(state: ServiceState, span: Us) -> Tally {
        let mut t = Tally {
            span,
            ..Tally::default()
        };
        match state {
            ServiceState::InService => t.in_service = span,
            ServiceState::OutOfService => {
                t.out_of_service = span;
                t.lead = span;
                t.trail = span;
            }
            ServiceState::Unknown => {}
        }
        t
    }

    /// The state the whole span was in, if it was one, nothing excluded.
    pub fn is_pure(&self) -> Option<ServiceState> {
        if self.excluded != 0 {
            None
        } else if self.in_service == self.span {
            Some(ServiceState::InService)
        } else if self.out_of_service == self.span && self.whole() {
            Some(ServiceState::OutOfService)
        } else if self.in_service == 0 && self.out_of_service == 0 {
            Some(ServiceState::Unknown)
        } else {
            None
        }
    }

    /// Unknown (no interval, or an unknown one), not excluded.
    pub fn unknown(&self) -> Us {
        self.span - self.in_service - self.out_of_service - self.excluded
    }

    /// Whether the whole span is one outage.
    fn whole(&self) -> bool {
        self.span > 0 && self.lead == self.span
    }

    /// This span followed by `next` (which starts where this one ends).
    pub fn then(self, next: Tally) -> Tally {
        if self.span == 0 {
            return next;
        }
        if next.span == 0 {
            return self;
        }
        let mut t = Tally {
            span: self.span + next.span,
            in_service: self.in_service + next.in_service,
            out_of_service: self.out_of_service + next.out_of_service,
            excluded: self.excluded + next.excluded,
            lead: self.lead,
            trail: next.trail,
            inner: self.inner + next.inner,
            inner_total: self.inner_total + next.inner_total,
            inner_longest: self.inner_longest.max(next.inner_longest),
        };
        let seam = self.trail + next.lead; // the run across the seam, if both sides have one
        match (self.whole(), next.whole()) {
            (true, true) => {
                t.lead = t.span;
                t.trail = t.span;
            }
            (true, false) => t.lead = seam,
            (false, true) => t.trail = seam,
            (false, false) => {
                if self.trail > 0 && next.lead > 0 {
                    t.add_inner(seam);
                } else {
                    // a run ending exactly at the seam, or starting there, is whole
                    if self.trail > 0 {
                        t.add_inner(self.trail);
                    }
                    if next.lead > 0 {
                        t.add_inner(next.lead);
                    }
                }
            }
        }
        t
    }

    fn add_inner(&mut self, d: Us) {
        self.inner += 1;
        self.inner_total += d;
        self.inner_longest = self.inner_longest.max(d);
    }

    /// Closes an outage run [s, e) of the span [from, from + span).
    fn close_run(&mut self, from: Us, (s, e): (Us, Us)) {
        let to = from + self.span;
        match (s == from, e == to) {
            (true, true) => {
                self.lead = e - s;
                self.trail = e - s;
            }
            (true, false) => self.lead = e - s,
            (false, true) => self.trail = e - s,
            (false, false) => self.add_inner(e - s),
        }
    }

    /// The tally of one device's intervals (in time order) over [from, to), `windows` the
    /// maintenance windows that may cover it.
    pub fn of<W: Borrow<MaintenanceRow>>(
        intervals: &[ServiceInterval],
        from: Us,
        to: Us,
        windows: &[W],
    ) -> Tally {
        let mut t = Tally {
            span: (to - from).max(0),
            ..Tally::default()
        };
        if to <= from {
            return t;
        }
        let mut run: Option<(Us, Us)> = None;
        let mut free = Vec::new();
        for i in intervals {
            let a = i.valid_from.max(from);
            let b = i.valid_to.unwrap_or(Us::MAX).min(to);
            if a >= b {
                continue;
            }
            let mut spans: Vec<(Us, Us)> = windows
                .iter()
                .map(Borrow::borrow)
                .filter(|w| w.start < b && w.end > a && covers(w, i))
                .map(|w| (w.start, w.end))
                .collect();
            free.clear();
            uncovered(a, b, &mut spans, &mut free);
            let counted: Us = free.iter().map(|(s, e)| e - s).sum();
            t.excluded += (b - a) - counted;
            match i.state {
                ServiceState::InService => t.in_service += counted,
                ServiceState::OutOfService => t.out_of_service += counted,
                ServiceState::Unknown => {}
            }
            if i.state != ServiceState::OutOfService {
                continue;
            }
            for &(s, e) in &free {
                run = match run {
                    Some((rs, re)) if re == s => Some((rs, e)),
                    other => {
                        if let Some(r) = other {
                            t.close_run(from, r);
                        }
                        Some((s, e))
                    }
                };
            }
        }
        if let Some(r) = run {
            t.close_run(from, r);
        }
        t
    }

    /// Outages: count, summed length and longest, µs.
    pub fn outages(&self) -> (u64, Us, Us) {
        let whole = self.whole();
        let edge_runs = [Some(self.lead), (!whole).then_some(self.trail)];
        let edges = edge_runs.into_iter().flatten().filter(|&d| d > 0);
        let (mut n, mut total, mut longest) = (self.inner, self.inner_total, self.inner_longest);
        for d in edges {
            n += 1;
            total += d;
            longest = longest.max(d);
        }
        (n, total, longest)
    }

    /// Its fields packed in 32 bits each, if they fit (every one does for a span of at most
    /// `u32::MAX` µs, e.g. an hour); the span is not kept ([`Tally::unpack`] is given it).
    pub fn pack(&self) -> Option<[u32; 8]> {
        let f = [
            self.in_service,
            self.out_of_service,
            self.excluded,
            self.lead,
            self.trail,
            Us::try_from(self.inner).ok()?,
            self.inner_total,
            self.inner_longest,
        ];
        let mut out = [0u32; 8];
        for (o, v) in out.iter_mut().zip(f) {
            *o = u32::try_from(v).ok()?;
        }
        Some(out)
    }

    /// The tally of a span of `span` µs that [`Tally::pack`] packed.
    pub fn unpack(span: Us, p: [u32; 8]) -> Tally {
        let [
            in_service,
            out_of_service,
            excluded,
            lead,
            trail,
            inner,
            inner_total,
            longest,
        ] = p.map(Us::from);
        Tally {
            span,
            in_service,
            out_of_service,
            excluded,
            lead,
            trail,
            inner: inner as u64,
            inner_total,
            inner_longest: longest,
        }
    }

    /// Seconds, as the API answers them.
    pub fn seconds(&self) -> Seconds {
        let mut t = Total::default();
        t.add(self);
        t.seconds()
    }
}

/// The tallies of many devices over one window (a group's), summed exactly whatever the
/// order; turned into seconds once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Total {
    /// Devices added.
    pub devices: u64,
    in_service: Us,
    out_of_service: Us,
    unknown: Us,
    excluded: Us,
    outages: u64,
    outage_total: Us,
    longest: Us,
}

impl Total {
    /// Adds one device's tally.
    pub fn add(&mut self, t: &Tally) {
        let (n, total, longest) = t.outages();
        self.devices += 1;
        self.in_service += t.in_service;
        self.out_of_service += t.out_of_service;
        self.unknown += t.unknown();
        self.excluded += t.excluded;
        self.outages += n;
        self.outage_total += total;
        self.longest = self.longest.max(longest);
    }

    /// Adds another total (of other devices).
    pub fn merge(&mut self, o: &Total) {
        self.devices += o.devices;
        self.in_service += o.in_service;
        self.out_of_service += o.out_of_service;
        self.unknown += o.unknown;
        self.excluded += o.excluded;
        self.outages += o.outages;
        self.outage_total += o.outage_total;
        self.longest = self.longest.max(o.longest);
    }

    /// Seconds, as the API answers them.
    pub fn seconds(&self) -> Seconds {
        let s = |us: Us| us as f64 / US;
        Seconds {
            in_service_s: s(self.in_service),
            out_of_service_s: s(self.out_of_service),
            unknown_s: s(self.unknown),
            excluded_s: s(self.excluded),
            outages: self.outages,
            longest_outage_s: s(self.longest),
            outage_total_s: s(self.outage_total),
        }
    }
}

/// Seconds of one device's intervals (from [`derive`](super::intervals::derive)) over
/// [from, to).
pub fn device_seconds(
    intervals: &[ServiceInterval],
    from: Us,
    to: Us,
    windows: &[MaintenanceRow],
) -> Seconds {
    Tally::of(intervals, from, to, windows).seconds()
}

/// The parts of [a, b) outside the union of `spans`, in order, into `out`.
fn uncovered(a: Us, b: Us, spans: &mut [(Us, Us)], out: &mut Vec<(Us, Us)>) {
    spans.sort_unstable();
    let mut cursor = a;
    for &(s, e) in spans.iter() {
        let (s, e) = (s.max(cursor), e.min(b));
        if s < e {
            if cursor < s {
                out.push((cursor, s));
            }
            cursor = e;
        }
    }
    if cursor < b {
        out.push((cursor, b));
    }
}
