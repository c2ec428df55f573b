//! The report as one self-contained HTML page (well-formed XHTML syntax: no script, no
//! external font, image or stylesheet; charts inline SVG; a print stylesheet for A4 pages).
//!
//! Every figure cell carries its exact value (`data-field`, `data-v`) beside the text people
//! read, so a program can check the page against the API.

use std::fmt::Write;

use chrono_tz::Tz;

use callstate_query::model::sla::SlaRow;
use callstate_schemas::format_instant;

use crate::figures::{ClusterReport, Exclusion, GroupFigures, IncidentFigures, SlaReport};
use crate::format::{dur, esc, exact, local, pct, pp};
use crate::svg;

const STYLE: &str = include_str!("report.css");

/// The page.
pub fn render(r: &SlaReport) -> String {
    let tz: Tz = r.tz.parse().unwrap_or(Tz::UTC);
    let mut s = String::with_capacity(64 * 1024);
    let title = format!("Availability report {}", r.month);
    let _ = writeln!(
        s,
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<meta name=\"generator\" content=\"callstate\"/>\n<title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>",
        esc(&title)
    );
    cover(&mut s, r, tz, &title);
    for c in &r.clusters {
        cluster(&mut s, r, c, tz);
    }
    s.push_str("</body>\n</html>\n");
    s
}

fn cover(s: &mut String, r: &SlaReport, tz: Tz, title: &str) {
    let _ = writeln!(
        s,
        "<header class=\"cover\" data-month=\"{}\" data-from=\"{}\" data-to=\"{}\" data-tz=\"{}\" data-group-by=\"{}\">\n<h1>{}</h1>\n<p class=\"lead\">{} to {} ({}), compared with {}. Groups: {}. Generated {} UTC.</p>",
        esc(&r.month),
        format_instant(r.from),
        format_instant(r.to),
        esc(&r.tz),
        r.group_by,
        esc(title),
        local(r.from, tz),
        local(r.to, tz),
        esc(&r.tz),
        esc(&r.previous_month),
        r.group_by.replace('_', " "),
        format_instant(r.generated_at)
            .get(..19)
            .unwrap_or_default()
            .replace('T', " "),
    );
    s.push_str("<table class=\"figures overview\">\n<thead>");
    head(s, "cluster");
    s.push_str("</thead>\n<tbody>\n");
    for c in &r.clusters {
        row(s, "overview", &c.summary);
    }
    s.push_str("</tbody>\n</table>\n");
    s.push_str("<p class=\"note\">Availability = in service ÷ (in service + out of service) device-time; unknown time and time inside maintenance windows are not counted. Error budget = (1 − target) × counted time. An outage is one device's continuous out-of-service time outside maintenance; MTTR is their mean length.</p>\n</header>\n");
}

fn head(s: &mut String, first: &str) {
    let _ = write!(
        s,
        "<tr><th>{}</th><th>devices</th><th>availability</th><th>target</th><th>SLA</th><th>budget allowed</th><th>budget used</th><th>budget left</th><th>outages</th><th>MTTR</th><th>longest</th><th>excluded</th><th>vs previous</th></tr>",
        esc(first)
    );
}

/// A cell of text with its exact value for programs (`data-v`).
fn text_cell(s: &mut String, field: &str, v: &str, text: &str) {
    let _ = write!(
        s,
        "<td data-field=\"{field}\" data-v=\"{}\">{}</td>",
        esc(v),
        esc(text)
    );
}

/// A number cell: exact in `data-v` (empty for none), `text` shown.
fn cell(s: &mut String, field: &str, v: Option<f64>, text: &str) {
    text_cell(s, field, &exact(v), text);
}

/// A count.
fn count(s: &mut String, field: &str, n: u64) {
    cell(s, field, Some(n as f64), &n.to_string());
}

/// Seconds, shown as a duration.
fn secs(s: &mut String, field: &str, v: f64) {
    cell(s, field, Some(v), &dur(Some(v)));
}

fn met(s: &mut String, m: Option<bool>) {
    let (v, class, text) = match m {
        Some(true) => ("true", "met", "met"),
        Some(false) => ("false", "breached", "breached"),
        None => ("", "none", "—"),
    };
    let _ = write!(
        s,
        "<td data-field=\"met\" data-v=\"{v}\"><span class=\"badge {class}\">{text}</span></td>"
    );
}

fn figures_cells(s: &mut String, r: &SlaRow) {
    count(s, "devices", r.devices);
    cell(s, "availability", r.availability, &pct(r.availability));
    cell(s, "target", Some(r.target), &pct(Some(r.target)));
    met(s, r.met);
    secs(s, "budget_allowed_s", r.budget_allowed_s);
    secs(s, "budget_used_s", r.budget_used_s);
    secs(s, "budget_remaining_s", r.budget_remaining_s);
    count(s, "outages", r.outages);
    cell(s, "mttr_s", r.mttr_s, &dur(r.mttr_s));
    secs(s, "longest_outage_s", r.longest_outage_s);
    secs(s, "excluded_s", r.excluded_s);
}

fn row(s: &mut String, kind: &str, g: &GroupFigures) {
    let r = &g.month;
    let breached = if r.met == Some(false) {
        " class=\"breached\""
    } else {
        ""
    };
    let _ = write!(
        s,
        "<tr data-row=\"{kind}\" data-group=\"{}\"{breached}><th scope=\"row\">{}</th>",
        esc(&r.group_key),
        esc(&r.group_key)
    );
    figures_cells(s, r);
    let change = g.change_pp();
    cell(s, "change_pp", change, &pp(change));
    s.push_str("</tr>\n");
}

fn cluster(s: &mut String, r: &SlaReport, c: &ClusterReport, tz: Tz) {
    let m = &c.summary.month;
    let _ = writeln!(
        s,
        "<section class=\"cluster\" data-cluster=\"{}\">\n<h2>Cluster {}</h2>",
        esc(&c.cluster),
        esc(&c.cluster)
    );
    let verdict = match m.met {
        Some(true) => "met its target",
        Some(false) => "breached its target",
        None => "had no measured time",
    };
    let _ = writeln!(
        s,
        "<p class=\"lead\">{} {verdict}: {} against {}; {} of error budget used out of {} ({} left).</p>",
        esc(&c.cluster),
        pct(m.availability),
        pct(Some(m.target)),
        dur(Some(m.budget_used_s)),
        dur(Some(m.budget_allowed_s)),
        dur(Some(m.budget_remaining_s)),
    );
    s.push_str("<table class=\"figures summary\">\n<thead>");
    head(s, "cluster");
    s.push_str("</thead>\n<tbody>\n");
    row(s, "summary", &c.summary);
    s.push_str("</tbody>\n</table>\n");
    let _ = writeln!(
        s,
        "<figure class=\"daily\" data-group=\"{}\">{}<figcaption>Daily availability of {} ({}), target dashed.</figcaption></figure>",
        esc(&c.cluster),
        svg::daily(&c.summary.daily, m.target, tz),
        esc(&c.cluster),
        esc(&r.tz),
    );
    let by = r.group_by.replace('_', " ");
    let _ = write!(
        s,
        "<h3>By {by}</h3>\n<table class=\"figures groups\">\n<thead>"
    );
    head(s, &by);
    s.push_str("</thead>\n<tbody>\n");
    for g in &c.groups {
        row(s, "group", g);
    }
    s.push_str("</tbody>\n</table>\n<div class=\"small-multiples\">\n");
    for g in &c.groups {
        let _ = writeln!(
            s,
            "<figure class=\"daily small\" data-group=\"{}\">{}<figcaption>{}</figcaption></figure>",
            esc(&g.month.group_key),
            svg::daily(&g.daily, g.month.target, tz),
            esc(&g.month.group_key),
        );
    }
    s.push_str("</div>\n");
    incidents(s, &c.incidents, r, tz);
    worst(s, &c.worst);
    exclusions(s, &c.exclusions, tz);
    s.push_str("</section>\n");
}

fn incidents(s: &mut String, list: &[IncidentFigures], r: &SlaReport, tz: Tz) {
    let _ = writeln!(s, "<h3>Incidents ({})</h3>", list.len());
    if list.is_empty() {
        let _ = writeln!(
            s,
            "<p class=\"none\">No incident (at least {} devices out of service together) started in {}.</p>",
            r.incident_min_devices,
            esc(&r.month)
        );
        return;
    }
    s.push_str("<table class=\"incidents\">\n<thead><tr><th>started</th><th>scope</th><th>target</th><th>cause</th><th>devices</th><th>50 % back</th><th>90 % back</th><th>all back</th><th>failovers</th><th>re-homes</th><th>calls hit</th><th>calls ended</th></tr></thead>\n<tbody>\n");
    for f in list {
        let i = &f.incident;
        let _ = write!(s, "<tr data-incident=\"{}\">", esc(&i.id));
        let start = format_instant(i.started_at);
        text_cell(s, "started_at", &start, &local(i.started_at, tz));
        text_cell(s, "scope", &i.scope, &i.scope);
        text_cell(s, "target", &i.target, &i.target);
        text_cell(s, "cause", &i.cause, &i.cause);
        count(s, "devices_affected", i.devices_affected as u64);
        cell(s, "recovery_50_s", i.recovery_50_s, &dur(i.recovery_50_s));
        cell(s, "recovery_90_s", i.recovery_90_s, &dur(i.recovery_90_s));
        cell(
            s,
            "recovery_100_s",
            i.recovery_100_s,
            &dur(i.recovery_100_s),
        );
        let (fo, rh) = (i.failovers.len(), i.rehomes.len());
        count(s, "failovers", fo as u64);
        count(s, "rehomes", rh as u64);
        // not known where retention removed the call legs of the time
        let calls = i.calls_active.map(|n| n as f64);
        let text = i
            .calls_active
            .map_or_else(|| "not kept".to_string(), |n| n.to_string());
        cell(s, "calls_active", calls, &text);
        let ended: Vec<String> = i
            .calls_ended
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(s, "<td>{}</td></tr>", esc(&ended.join(", ")));
    }
    s.push_str("</tbody>\n</table>\n");
    for f in list {
        let i = &f.incident;
        let _ = writeln!(
            s,
            "<figure class=\"recovery\" data-incident=\"{}\">{}<figcaption>Recovery of {} ({}, {}): share of the {} affected devices back in service against time since {}.</figcaption></figure>",
            esc(&i.id),
            svg::recovery(&f.recovered_after_s, i.devices_affected),
            esc(&i.target),
            esc(&i.scope),
            esc(&i.cause),
            i.devices_affected,
            local(i.started_at, tz),
        );
    }
}

fn worst(s: &mut String, rows: &[SlaRow]) {
    let _ = writeln!(s, "<h3>Worst devices ({})</h3>", rows.len());
    if rows.is_empty() {
        s.push_str("<p class=\"none\">Every device was fully available.</p>\n");
        return;
    }
    s.push_str("<table class=\"worst\">\n<thead><tr><th>device</th><th>availability</th><th>out of service</th><th>outages</th><th>longest</th><th>unknown</th></tr></thead>\n<tbody>\n");
    for r in rows {
        let _ = write!(
            s,
            "<tr data-device=\"{}\"><th scope=\"row\">{}</th>",
            esc(&r.group_key),
            esc(&r.group_key)
        );
        cell(s, "availability", r.availability, &pct(r.availability));
        secs(s, "budget_used_s", r.budget_used_s);
        count(s, "outages", r.outages);
        secs(s, "longest_outage_s", r.longest_outage_s);
        secs(s, "unknown_s", r.unknown_s);
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>\n");
}

fn exclusions(s: &mut String, list: &[Exclusion], tz: Tz) {
    let _ = writeln!(s, "<h3>Maintenance exclusions ({})</h3>", list.len());
    if list.is_empty() {
        s.push_str("<p class=\"none\">No maintenance window excluded time.</p>\n");
        return;
    }
    s.push_str("<table class=\"exclusions\">\n<thead><tr><th>scope</th><th>target</th><th>from</th><th>to</th><th>reason</th><th>devices</th><th>device-time excluded</th></tr></thead>\n<tbody>\n");
    for e in list {
        let reason = e.reason.as_deref().unwrap_or("");
        let _ = write!(
            s,
            "<tr data-exclusion=\"{}/{}/{}\">",
            esc(&e.scope),
            esc(&e.target),
            format_instant(e.start)
        );
        text_cell(s, "scope", &e.scope, &e.scope);
        text_cell(s, "target", &e.target, &e.target);
        text_cell(s, "start", &format_instant(e.start), &local(e.start, tz));
        text_cell(s, "end", &format_instant(e.end), &local(e.end, tz));
        let shown = if reason.is_empty() {
            "(none given)"
        } else {
            reason
        };
        text_cell(s, "reason", reason, shown);
        count(s, "devices", e.devices);
        secs(s, "excluded_s", e.excluded_s);
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>\n");
}
