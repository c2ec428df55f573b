//! A source's activity: the runs of its event times with no gap over 90 s, from which its
//! silences follow (design.md §2). Kept merged as events arrive, in any order.

use callstate_schemas::{SILENCE_US, Us};

use crate::model::intervals::{closed_silences, open_silence};

/// The activity spans of one source, merged across gaps of at most 90 s, by start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    spans: Vec<(Us, Us)>,
}

impl Activity {
    /// From spans already merged (the from-scratch loader's).
    pub fn from_spans(spans: Vec<(Us, Us)>) -> Activity {
        Activity { spans }
    }

    /// The merged spans.
    pub fn spans(&self) -> &[(Us, Us)] {
        &self.spans
    }

    /// When the source fell silent for good (90 s after its last event).
    pub fn open_from(&self) -> Option<Us> {
        open_silence(&self.spans)
    }

    /// Its closed unknown windows (between spans).
    pub fn closed(&self) -> Vec<(Us, Option<Us>)> {
        closed_silences(&self.spans)
    }

    /// Adds event times; returns the earliest instant from which the closed silences
    /// changed, if they did (a heartbeat in time changes none: it only moves the open one).
    pub fn add(&mut self, times: &[Us]) -> Option<Us> {
        let before = self.closed();
        for &t in times {
            self.insert(t);
        }
        let after = self.closed();
        if before == after {
            return None;
        }
        // the first window that differs, on either side
        let k = before
            .iter()
            .zip(&after)
            .position(|(a, b)| a != b)
            .unwrap_or(before.len().min(after.len()));
        let first = |w: &[(Us, Option<Us>)]| w.get(k).map(|x| x.0);
        [first(&before), first(&after)].into_iter().flatten().min()
    }

    fn insert(&mut self, t: Us) {
        let s = &mut self.spans;
        // the common case: at or after the last span's start, within 90 s of its end
        if let Some(last) = s.last_mut()
            && t >= last.0
            && t <= last.1 + SILENCE_US
        {
            last.1 = last.1.max(t);
            return;
        }
        // the first span that ends no more than 90 s before t
        let i = s.partition_point(|x| x.1 + SILENCE_US < t);
        if i == s.len() || s[i].0 - t > SILENCE_US {
            s.insert(i, (t, t));
            return;
        }
        s[i].0 = s[i].0.min(t);
        s[i].1 = s[i].1.max(t);
        // a span that grew may now reach the next ones
        while i + 1 < s.len() && s[i + 1].0 - s[i].1 <= SILENCE_US {
            let next = s.remove(i + 1);
            s[i].1 = s[i].1.max(next.1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Us = 1_000_000;

    /// The reference: every time as a point span, merged as the from-scratch loader does.
    fn merged(mut times: Vec<Us>) -> Vec<(Us, Us)> {
        times.sort_unstable();
        let mut out: Vec<(Us, Us)> = Vec::new();
        for t in times {
            match out.last_mut() {
                Some(l) if t - l.1 <= SILENCE_US => l.1 = l.1.max(t),
                _ => out.push((t, t)),
            }
        }
        out
    }

    #[test]
    fn spans_merge_alike_in_any_order_and_changes_are_reported() {
        let times: Vec<Us> = vec![0, 30, 60, 200, 230, 400, 85, 170, 320, 490, 5, 1000]
            .into_iter()
            .map(|x| x * S)
            .collect();
        for rotate in 0..times.len() {
            let mut t = times.clone();
            t.rotate_left(rotate);
            let mut a = Activity::default();
            for x in &t {
                a.add(&[*x]);
            }
            assert_eq!(
                a.spans(),
                merged(times.clone()).as_slice(),
                "rotation {rotate}"
            );
        }
        let mut a = Activity::default();
        assert_eq!(a.add(&[0, 30 * S]), None, "no gap yet");
        assert_eq!(a.add(&[60 * S]), None, "a heartbeat in time");
        assert_eq!(a.open_from(), Some(150 * S));
        // a gap: the window from 150 s to 300 s appears
        assert_eq!(a.add(&[300 * S]), Some(150 * S));
        // a late event shortening it: the window now starts at 230 s
        assert_eq!(a.add(&[140 * S]), Some(150 * S));
        assert_eq!(a.closed(), vec![(230 * S, Some(300 * S))]);
        // another filling it: the window goes
        assert_eq!(a.add(&[220 * S]), Some(230 * S));
        assert!(a.closed().is_empty());
    }
}
