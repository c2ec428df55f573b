//! Hourly rollups frozen before the horizon of retention of intervals: what availability and
//! SLA over the hours before it are answered from once the intervals there are gone.
//!
//! When retention of intervals folds the history before a horizon (on a whole UTC hour), each
//! device's tally per hour before it ([`Rollup::units_between`], with the maintenance windows
//! known then) is kept in the log beside the base ([`Frozen::freeze`], the fold's `kept`
//! bytes); a later fold adds the hours up to its horizon to them, and retention of rollups
//! drops the hours before its own. A window over whole hours from where rollups are kept is
//! then answered from them to the microsecond as from the intervals they were built from
//! (`query/tests/intervals_retention.rs`); what they cannot answer is refused, naming why
//! ([`Frozen::answers`]): a window edge inside an hour before the horizon, hours before
//! retention of rollups, and hours a maintenance window announced, moved or cancelled since
//! the freeze touches (it can no longer be applied: the intervals are gone). Each window is
//! kept with the hours it was applied to: a window announced between two folds is applied to
//! the second fold's hours and answered there, refused only over the first's.
//!
//! The file: a magic, the units kept [from, end), the latest ingest time of the events they
//! were built from, the maintenance windows applied (scope, target, start, end, and the
//! units [from, end) of the fold that applied them), then per
//! device its name, first unit, units, runs and its runs' bytes ([`UnitRuns`]); varints and
//! length-prefixed strings; a CRC-32C of all of it last.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use callstate_log::Snapshot;
use callstate_schemas::{ServiceState, Us, format_instant};

use super::intervals::ServiceInterval;
use super::rollup::{Exclusions, Rollup, RollupHead, UNIT, unit_from, unit_of, units_touched};
use super::rows::MaintenanceRow;
use super::shared_bytes::{Buffer, SharedBytes};
use super::tally::Tally;
use super::unit_runs::{Cursor, Extent, UnitRuns};
use super::varint::{Reader, put, unzigzag, zigzag};
use crate::error::{QueryError, Result};

const MAGIC: [u8; 8] = *b"CSFROZ02";

/// A maintenance window as the frozen hours applied it: scope, target, start, end.
pub type WindowKey = (Arc<str>, Arc<str>, Us, Us);

/// A maintenance window and the units [from, end) of the fold whose hours it was applied to
/// (those of them it touches).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Applied {
    window: WindowKey,
    units: (i64, i64),
}

/// [a, b) ∩ [c, d), empty when a ≥ b.
fn meet((a, b): (i64, i64), (c, d): (i64, i64)) -> (i64, i64) {
    (a.max(c), b.min(d))
}

/// Every device's hourly tallies over the units [from, end) before the horizon of retention
/// of intervals.
#[derive(Debug, Clone, Default)]
pub struct Frozen {
    /// The first unit kept (`i64::MIN`: every unit from each device's first).
    from: i64,
    /// The unit after the last: the horizon's.
    end: i64,
    /// The latest ingest time of the events they were built from.
    known_until: Us,
    /// The maintenance windows applied to units before `end`, each with the units of the
    /// fold that applied it (sorted).
    windows: Vec<Applied>,
    /// Each device's units, from its first (or `from`) to `end`.
    devices: HashMap<Box<str>, Rollup>,
}

/// How the edges of an availability or SLA window are taken where only hourly rollups are
/// kept (before the horizon of retention of intervals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Edges {
    /// As asked: an edge inside such an hour is refused.
    #[default]
    Exact,
    /// An edge inside such an hour is moved inward to the whole hour (the window's start
    /// up, its end down): the rows' window bounds say what was answered.
    Hours,
}

impl std::str::FromStr for Edges {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Edges, String> {
        match s {
            "exact" => Ok(Edges::Exact),
            "hours" => Ok(Edges::Hours),
            _ => Err(format!("`{s}`: expected exact or hours")),
        }
    }
}

/// The windows of `rows` that touch instants before `until`, as [`WindowKey`]s.
fn window_keys(rows: &[MaintenanceRow], until: Us) -> BTreeSet<WindowKey> {
    rows.iter()
        .filter(|w| w.start < w.end && w.start < until)
        .map(|w| (w.scope.clone(), w.target.clone(), w.start, w.end))
        .collect()
}

impl Frozen {
    /// The first instant kept (`Us::MIN`: every hour).
    pub fn kept_from(&self) -> Us {
        self.from.saturating_mul(UNIT)
    }

    /// The horizon: the instant after the last hour.
    pub fn until(&self) -> Us {
        self.end * UNIT
    }

    /// The latest ingest time of the events they were built from: a question as known at an
    /// earlier time cannot be answered from them.
    pub fn known_until(&self) -> Us {
        self.known_until
    }

    /// Devices with hours kept.
    pub fn devices(&self) -> usize {
        self.devices.len()
    }

    /// The rollups of `devices` (each one's name and intervals, in time order, every
    /// silence cut out; maintenance windows `windows`) before `horizon` (a whole hour), those
    /// `before` kept (up to its own horizon, not later than this one) and the hours after
    /// from `devices`; the hours before `kept_from` (rounded up to an hour) left out.
    /// `known_until`: the latest ingest time of what `devices` were derived from.
    pub fn freeze<'a>(
        devices: impl Iterator<Item = (&'a str, Cow<'a, [ServiceInterval]>)>,
        windows: &[MaintenanceRow],
        before: Option<&Frozen>,
        horizon: Us,
        kept_from: Option<Us>,
        known_until: Us,
    ) -> Frozen {
        debug_assert_eq!(horizon.rem_euclid(UNIT), 0, "frozen on a whole hour");
        let end = unit_of(horizon);
        let from = kept_from
            .map(unit_from)
            .max(before.map(|b| b.from))
            .unwrap_or(i64::MIN);
        let ex = Exclusions::new(windows);
        let mut kept = HashMap::new();
        for (name, intervals) in devices {
            let Some(first) = intervals.first() else {
                continue;
            };
            let old = before.and_then(|b| b.devices.get(name).map(|r| (b, r)));
            let start = match old {
                Some((b, _)) => b.end,
                None => unit_of(first.valid_from).max(before.map_or(i64::MIN, |b| b.end)),
            }
            .max(from);
            let mut runs = UnitRuns::default();
            if let Some((b, r)) = old {
                let (first, _) = r.covered();
                let keep_from = first.max(from);
                if keep_from < b.end {
                    runs.extend_from(r.runs(), keep_from, b.end);
                }
            }
            if start < end {
                Rollup::push_units(&mut runs, name, &intervals, &ex, (start, end));
            }
            runs.finish();
            if runs.is_empty() {
                continue;
            }
            let head = RollupHead {
                extent: runs.parts().0,
                ..RollupHead::default()
            };
            let bytes = SharedBytes::from(runs.parts().1.to_vec());
            kept.insert(name.into(), Rollup::from_parts(head, bytes));
        }
        // the windows the hours kept from before were built with stay theirs; those known
        // now are applied to this fold's units (one entry where a window carries on)
        let new = (before.map_or(i64::MIN, |b| b.end).max(from), end);
        let mut applied: Vec<Applied> = before
            .map(|b| b.windows.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a.units.1 > from)
            .collect();
        if new.0 < new.1 {
            for window in window_keys(windows, end * UNIT) {
                let units = meet(new, units_touched(window.2, window.3));
                if units.0 >= units.1 {
                    continue;
                }
                match applied
                    .iter_mut()
                    .find(|a| a.window == window && a.units.1 == units.0)
                {
                    Some(a) => a.units.1 = units.1,
                    None => applied.push(Applied { window, units }),
                }
            }
        }
        applied.sort();
        Frozen {
            from,
            end,
            known_until: before.map_or(known_until, |b| b.known_until.max(known_until)),
            windows: applied,
            devices: kept,
        }
    }

    /// [from, to) with an edge inside an hour before the horizon moved inward to that hour's
    /// edge (`from` up, `to` down), the rest as it is: what [`Edges::Hours`] asks; refused
    /// when nothing of the window is left (it lies inside one such hour).
    pub fn inward(&self, asked_from: Us, asked_to: Us) -> Result<(Us, Us)> {
        let until = self.until();
        let from = if asked_from < until {
            unit_from(asked_from) * UNIT
        } else {
            asked_from
        };
        let to = if asked_to < until {
            unit_of(asked_to) * UNIT
        } else {
            asked_to
        };
        if from >= to {
            return Err(QueryError::Retired(format!(
                "the window from {} to {} lies inside one hour before {}, where retention of \
                 intervals kept only hourly rollups: no whole hour of it is left to answer",
                format_instant(asked_from),
                format_instant(asked_to),
                format_instant(until),
            )));
        }
        Ok((from, to))
    }

    /// Whether the hours kept hold [from, to) up to the horizon whole: `from` before the
    /// horizon, not before the first hour kept, and on a whole hour, as `to` is if before the
    /// horizon (what [`answers`](Self::answers) asks before its maintenance windows).
    pub fn covers(&self, from: Us, to: Us) -> bool {
        let whole = |t: Us| t.rem_euclid(UNIT) == 0;
        from < self.until()
            && from >= self.kept_from()
            && whole(from)
            && (to >= self.until() || whole(to))
    }

    /// Refuses availability over [from, to) (`from` before the horizon) where the hours kept
    /// cannot answer it: before the first hour kept, an edge inside an hour before the
    /// horizon, or hours a maintenance window of `now` (the windows known now) that was not
    /// applied to them, or one applied to them that is no longer there, touches.
    pub fn answers(&self, from: Us, to: Us, now: &[MaintenanceRow]) -> Result<()> {
        let until = self.until();
        let to = to.min(until);
        if from < self.kept_from() {
            return Err(QueryError::Retired(format!(
                "retention of rollups removed the hours before {}: the window from {} \
                 reaches before it",
                format_instant(self.kept_from()),
                format_instant(from)
            )));
        }
        if from.rem_euclid(UNIT) != 0 || to.rem_euclid(UNIT) != 0 {
            return Err(QueryError::Retired(format!(
                "retention of intervals kept only hourly rollups before {}: the window from \
                 {} must begin and end on whole UTC hours before it (edges=hours over HTTP, \
                 --edges hours in the CLI, 'hours' as the SQL functions' edges, move them \
                 there)",
                format_instant(until),
                format_instant(from)
            )));
        }
        debug_assert!(self.covers(from, to), "the two refusals above");
        let asked = (unit_of(from), unit_of(to));
        let known = window_keys(now, until);
        // a window known now over asked hours no fold applied it to
        let announced = known.iter().filter(|w| {
            let (mut a, b) = meet(asked, units_touched(w.2, w.3));
            let mut spans: Vec<(i64, i64)> = (self.windows.iter())
                .filter(|x| &x.window == *w)
                .map(|x| x.units)
                .collect();
            spans.sort();
            for (c, d) in spans {
                if c > a {
                    break;
                }
                a = a.max(d);
            }
            a < b
        });
        // a window applied to asked hours and no longer known
        let gone = (self.windows.iter())
            .filter(|x| !known.contains(&x.window))
            .filter(|x| {
                let (a, b) = meet(meet(asked, x.units), units_touched(x.window.2, x.window.3));
                a < b
            })
            .map(|x| &x.window);
        let refused = announced
            .map(|w| (w, "announced or moved"))
            .chain(gone.map(|w| (w, "cancelled or moved")))
            .next();
        if let Some((w, what)) = refused {
            return Err(QueryError::Retired(format!(
                "the maintenance window on {} {} from {} to {} was {what} after the \
                 hours before {} were frozen (retention of intervals): it cannot be \
                 applied to them, so the window from {} to {} cannot be answered",
                w.0,
                w.1,
                format_instant(w.2),
                format_instant(w.3),
                format_instant(until),
                format_instant(from),
                format_instant(to)
            )));
        }
        Ok(())
    }

    /// What its index holds on the heap (the table, names, heads and windows; runs read in
    /// place from a buffer are not counted).
    pub fn heap_bytes(&self) -> usize {
        let table = self.devices.capacity() * (size_of::<(Box<str>, Rollup)>() + 1);
        let devices: usize = (self.devices.iter())
            .map(|(name, r)| name.len() + r.heap_bytes())
            .sum();
        let windows: usize = (self.windows.iter())
            .map(|a| size_of::<Applied>() + a.window.0.len() + a.window.1.len())
            .sum();
        table + devices + windows
    }

    /// The hours kept of the device `device`, if it has any.
    pub fn device(&self, device: &str) -> Option<&Rollup> {
        self.devices.get(device)
    }

    /// The time over [from, to) (whole hours kept, checked by [`answers`](Self::answers)) of
    /// the device whose hours are `device` ([`device`](Self::device); unknown where it has
    /// none), read on from `hint` as [`Rollup::tally_from`] does; with the next hint.
    pub fn tally(
        &self,
        device: Option<&Rollup>,
        hint: Option<Cursor>,
        from: Us,
        to: Us,
    ) -> (Tally, Option<Cursor>) {
        let (d0, d1) = (unit_of(from), unit_of(to.min(self.until())));
        if d0 >= d1 {
            return (Tally::default(), hint);
        }
        // (a ≤ b in every call below: an empty span is the empty tally)
        let unknown = |a: i64, b: i64| Tally::pure(ServiceState::Unknown, (b - a) * UNIT);
        let Some(r) = device else {
            return (unknown(d0, d1), hint);
        };
        let (first, end) = r.covered();
        let a = d0.max(first).min(d1);
        let b = d1.min(end).max(a);
        let (kept, hint) = r.tally_from(hint, a, b);
        (unknown(d0, a).then(kept).then(unknown(b, d1)), hint)
    }

    /// Its bytes, as [`decode`](Self::decode) reads them.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        put(&mut out, zigzag(self.from));
        put(&mut out, zigzag(self.end));
        put(&mut out, zigzag(self.known_until));
        put(&mut out, self.windows.len() as u64);
        for Applied { window, units } in &self.windows {
            let (scope, target, start, end) = window;
            put_str(&mut out, scope);
            put_str(&mut out, target);
            put(&mut out, zigzag(*start));
            put(&mut out, zigzag(*end));
            put(&mut out, zigzag(units.0));
            put(&mut out, zigzag(units.1));
        }
        let mut names: Vec<&Box<str>> = self.devices.keys().collect();
        names.sort();
        put(&mut out, names.len() as u64);
        for name in names {
            let r = &self.devices[name];
            let e = r.extent();
            put_str(&mut out, name);
            put(&mut out, zigzag(e.first));
            put(&mut out, (e.end - e.first) as u64);
            put(&mut out, u64::from(e.runs));
            put(&mut out, r.bytes().len() as u64);
            out.extend_from_slice(r.bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads what [`encode`](Self::encode) wrote; the devices' runs are read in place.
    pub fn decode(buffer: Buffer) -> Result<Frozen> {
        let bad = |why: &str| QueryError::Data(format!("frozen rollups: {why}"));
        let bytes: &[u8] = (*buffer).as_ref();
        if bytes.len() < MAGIC.len() + 4 || bytes[..MAGIC.len()] != MAGIC {
            return Err(bad("not a file of frozen rollups"));
        }
        let body = bytes.len() - 4;
        let crc = u32::from_le_bytes(bytes[body..].try_into().expect("4 bytes"));
        if crc32c::crc32c(&bytes[..body]) != crc {
            return Err(bad("checksum mismatch"));
        }
        let mut r = Reader {
            bytes: &bytes[..body],
            at: MAGIC.len(),
        };
        let short = || bad("truncated");
        let int = |r: &mut Reader<'_>| r.next_varint().ok_or_else(short);
        let from = unzigzag(int(&mut r)?);
        let end = unzigzag(int(&mut r)?);
        let known_until = unzigzag(int(&mut r)?);
        let mut windows = Vec::new();
        for _ in 0..int(&mut r)? {
            let scope: Arc<str> = get_str(&mut r).ok_or_else(short)?.into();
            let target: Arc<str> = get_str(&mut r).ok_or_else(short)?.into();
            let start = unzigzag(int(&mut r)?);
            let stop = unzigzag(int(&mut r)?);
            let units = (unzigzag(int(&mut r)?), unzigzag(int(&mut r)?));
            windows.push(Applied {
                window: (scope, target, start, stop),
                units,
            });
        }
        let n = int(&mut r)?;
        let mut devices = HashMap::with_capacity(n.min(1 << 20) as usize);
        for _ in 0..n {
            let name: Box<str> = get_str(&mut r).ok_or_else(short)?.into();
            let first = unzigzag(int(&mut r)?);
            let units = int(&mut r)? as i64;
            let runs = u32::try_from(int(&mut r)?).map_err(|_| bad("too many runs"))?;
            let len = int(&mut r)? as usize;
            let range = r.at..r
                .at
                .checked_add(len)
                .filter(|e| *e <= body)
                .ok_or_else(short)?;
            r.at = range.end;
            let head = RollupHead {
                extent: Extent {
                    first,
                    end: first + units,
                    runs,
                },
                ..RollupHead::default()
            };
            let runs = SharedBytes::shared(buffer.clone(), range);
            devices.insert(name, Rollup::from_parts(head, runs));
        }
        Ok(Frozen {
            from,
            end,
            known_until,
            windows,
            devices,
        })
    }
}

/// How the file of frozen rollups is read: [`read_whole`], or mapped (the live state's).
pub type Open<'a> = &'a dyn Fn(&Path) -> std::io::Result<Buffer>;

/// The file read whole onto the heap.
pub fn read_whole(path: &Path) -> std::io::Result<Buffer> {
    Ok(Arc::new(std::fs::read(path)?))
}

/// The hourly rollups frozen in `snap`'s base (read with `open`), if it keeps them and they
/// were built with what was ingested by `known_at` (`None`: now).
pub fn frozen_of(
    snap: &Snapshot,
    known_at: Option<Us>,
    open: Open<'_>,
) -> Result<Option<Arc<Frozen>>> {
    let Some((path, len)) = snap.kept_file() else {
        return Ok(None);
    };
    let buffer = open(&path).map_err(|e| {
        QueryError::Log(callstate_log::LogError::io(
            format!("reading {}", path.display()),
            e,
        ))
    })?;
    let got = (*buffer).as_ref().len() as u64;
    if got != len {
        return Err(QueryError::Data(format!(
            "{}: {got} bytes where the manifest says {len}",
            path.display()
        )));
    }
    let f = Frozen::decode(buffer)?;
    Ok(known_at
        .is_none_or(|k| k >= f.known_until())
        .then(|| Arc::new(f)))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn get_str(r: &mut Reader<'_>) -> Option<String> {
    let len = r.next_varint()? as usize;
    let bytes = r.bytes.get(r.at..r.at.checked_add(len)?)?;
    r.at += len;
    String::from_utf8(bytes.to_vec()).ok()
}
