//! The report's charts as inline SVG (no script, no external resource): daily availability
//! against the target, and an incident's recovery curve.

use std::fmt::Write;

use chrono_tz::Tz;

use callstate_query::model::sla::SlaRow;

use crate::format::{day, dur, esc, exact, pct};

const W: f64 = 680.0;
const H: f64 = 170.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// A horizontal grid line at `y` across a chart `width` wide, labelled on the left.
fn grid(s: &mut String, width: f64, y: f64, label: &str) {
    let _ = write!(
        s,
        r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
        width - RIGHT,
        LEFT - 4.0,
        y + 3.0,
    );
}

/// The lowest availability the axis shows: below the target and the worst day, rounded
/// down to a readable step.
fn axis_floor(values: impl Iterator<Item = f64>, target: f64) -> f64 {
    let low = values.fold(target, f64::min);
    let gap = (1.0 - low).max(1e-5) * 1.2;
    let step = 10f64.powf(gap.log10().floor());
    (1.0 - (gap / step).ceil() * step).max(0.0)
}

/// Daily availability bars (red below the target), the target as a dashed line.
pub fn daily(rows: &[SlaRow], target: f64, tz: Tz) -> String {
    let floor = axis_floor(rows.iter().filter_map(|r| r.availability), target);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let y = |v: f64| TOP + plot_h * (1.0 - (v - floor) / (1.0 - floor));
    let n = rows.len().max(1) as f64;
    let slot = plot_w / n;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="daily availability">"#
    );
    for (v, label) in [(1.0, pct(Some(1.0))), (floor, pct(Some(floor)))] {
        grid(&mut s, W, y(v), &label);
    }
    for (k, r) in rows.iter().enumerate() {
        let x = LEFT + slot * k as f64;
        let d = day(r.window_start, tz);
        if let Some(a) = r.availability {
            let top = y(a).min(TOP + plot_h - 1.0);
            let class = if a >= target { "ok" } else { "bad" };
            let _ = write!(
                s,
                r#"<rect class="{class}" data-day="{d}" data-v="{}" x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}"><title>{d}: {}</title></rect>"#,
                exact(Some(a)),
                x + slot * 0.15,
                slot * 0.7,
                TOP + plot_h - top,
                pct(Some(a)),
            );
        }
        if k % 5 == 0 {
            let _ = write!(
                s,
                r#"<text class="axis" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x + slot / 2.0,
                H - 8.0,
                esc(&d[5..]),
            );
        }
    }
    let ty = y(target);
    let _ = write!(
        s,
        r#"<line class="target" x1="{LEFT}" x2="{}" y1="{ty:.1}" y2="{ty:.1}"/><text class="axis target-label" x="{}" y="{:.1}" text-anchor="end">target {}</text></svg>"#,
        W - RIGHT,
        W - RIGHT,
        ty - 3.0,
        pct(Some(target)),
    );
    s
}

/// Share of the affected devices back in service against seconds since the start.
pub fn recovery(recovered_after_s: &[f64], affected: usize) -> String {
    let (w, h) = (W, 130.0);
    let plot_w = w - LEFT - RIGHT;
    let plot_h = h - TOP - BOTTOM;
    let end = recovered_after_s.last().copied().unwrap_or(0.0).max(1.0);
    let x = |t: f64| LEFT + plot_w * t / end;
    let y = |f: f64| TOP + plot_h * (1.0 - f);
    let n = affected.max(1) as f64;
    let mut pts = format!("{:.1},{:.1}", x(0.0), y(0.0));
    for (k, t) in recovered_after_s.iter().enumerate() {
        let _ = write!(
            pts,
            " {:.1},{:.1} {:.1},{:.1}",
            x(*t),
            y(k as f64 / n),
            x(*t),
            y((k + 1) as f64 / n)
        );
    }
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart recovery" viewBox="0 0 {w} {h}" role="img" aria-label="recovery curve">"#
    );
    for (f, label) in [(1.0, "100 %"), (0.5, "50 %"), (0.0, "0 %")] {
        grid(&mut s, w, y(f), label);
    }
    let _ = write!(
        s,
        r#"<polyline class="curve" points="{pts}"/><text class="axis" x="{LEFT}" y="{}">0 s</text><text class="axis" x="{}" y="{}" text-anchor="end">{}</text></svg>"#,
        h - 8.0,
        w - RIGHT,
        h - 8.0,
        esc(&dur(Some(end))),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_shows_the_target_and_the_worst_day() {
        assert_eq!(axis_floor([0.9995].into_iter(), 0.999), 0.998);
        let f = axis_floor([0.95].into_iter(), 0.999);
        assert!((0.9..=0.95).contains(&f), "{f}");
        assert_eq!(axis_floor(std::iter::empty(), 0.0), 0.0);
    }

    #[test]
    fn a_recovery_curve_steps_once_per_device() {
        let s = recovery(&[10.0, 20.0], 2);
        let pts = s
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(pts.split(' ').count(), 5);
    }
}
