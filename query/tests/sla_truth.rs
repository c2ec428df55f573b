//! Availability and SLA roll-ups against the simulator's truth; calendar windows.

use std::collections::BTreeMap;

use callstate_query::model::calendar::{Period, calendar_windows, parse_tz};
use callstate_query::model::sla::{GroupBy, Targets, sla};
use callstate_query::{LogRows, derive};

mod common;

fn us(s: &str) -> i64 {
    callstate_schemas::parse_time(s).unwrap().timestamp_micros()
}

#[test]
fn sla_per_pool_matches_the_truth() {
    let (events, truth) = common::simulate("node-failover", 200, 6);
    let (_dir, log) = common::log_with(&events, 1_000_000);
    let rows = LogRows::load(&log.snapshot(), None).unwrap();
    let intervals = derive(&rows);

    // a window around the failover, and the whole day
    for (from, to) in [
        ("2026-11-24T09:30:00Z", "2026-11-24T11:00:00Z"),
        ("2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z"),
    ] {
        let (f, t) = (us(from), us(to));
        let mut targets = Targets::default();
        let strict_pool = truth
            .device_info
            .values()
            .next()
            .unwrap()
            .device_pool
            .clone();
        targets.targets.insert(
            "device_pool".into(),
            BTreeMap::from([(strict_pool.clone(), 0.999_999)]),
        );
        let report = sla(
            &intervals,
            &rows.windows,
            f,
            t,
            GroupBy::DevicePool,
            &targets,
        );

        // expected, from the truth's intervals
        let (ft, tt) = (
            truth.start + chrono::Duration::microseconds(f - us("2026-11-24T00:00:00Z")),
            truth.start + chrono::Duration::microseconds(t - us("2026-11-24T00:00:00Z")),
        );
        let mut want: BTreeMap<String, (f64, f64, u64, f64)> = BTreeMap::new();
        for (d, info) in &truth.device_info {
            let s = truth.seconds(d, ft, tt);
            let e = want.entry(info.device_pool.clone()).or_default();
            e.0 += s.get("in_service").copied().unwrap_or(0.0);
            e.1 += s.get("out_of_service").copied().unwrap_or(0.0);
            for i in truth.devices[d]
                .iter()
                .filter(|i| i.state == "out_of_service" && i.from < tt && i.to > ft)
            {
                e.2 += 1;
                e.3 = e
                    .3
                    .max((i.to.min(tt) - i.from.max(ft)).num_microseconds().unwrap() as f64 / 1e6);
            }
        }
        assert_eq!(report.len(), want.len());
        for r in &report {
            let (i, o, n, longest) = want[&r.group_key];
            assert!((r.in_service_s - i).abs() < 1e-3, "{}: {r:?}", r.group_key);
            assert!((r.budget_used_s - o).abs() < 1e-3, "{}", r.group_key);
            assert_eq!(r.outages, n, "{} {from}", r.group_key);
            assert!(
                (r.longest_outage_s - longest).abs() < 1e-3,
                "{}",
                r.group_key
            );
            let a = i / (i + o);
            assert!((r.availability.unwrap() - a).abs() < 1e-12);
            let target = if r.group_key == strict_pool {
                0.999_999
            } else {
                0.999
            };
            assert_eq!(r.target, target);
            assert_eq!(r.met, Some(a >= target));
            assert!((r.budget_allowed_s - (1.0 - target) * (i + o)).abs() < 1e-6);
            assert!((r.budget_remaining_s - (r.budget_allowed_s - o)).abs() < 1e-6);
            if n > 0 {
                assert!(r.mttr_s.unwrap() > 0.0 && r.mttr_s.unwrap() <= longest + 1e-9);
            }
        }
        // the pools homed on the failed node had outages in the window around the failover
        assert!(report.iter().any(|r| r.outages > 0));
    }
}

#[test]
fn targets_files_are_checked() {
    let t = Targets::from_toml("default = 0.9995\n[targets.device_pool]\n\"DP-HQ\" = 0.99999\n")
        .unwrap();
    assert_eq!(t.of(GroupBy::DevicePool, "DP-HQ"), 0.99999);
    assert_eq!(t.of(GroupBy::DevicePool, "other"), 0.9995);
    assert_eq!(t.of(GroupBy::Cluster, "DP-HQ"), 0.9995);
    assert!(
        Targets::from_toml("default = 99.9")
            .unwrap_err()
            .to_string()
            .contains("between 0 and 1")
    );
    assert!(
        Targets::from_toml("[targets.building]\nA = 0.9")
            .unwrap_err()
            .to_string()
            .contains("group_by")
    );
}

#[test]
fn calendar_windows_follow_the_time_zone() {
    let paris = parse_tz("Europe/Paris").unwrap();
    // months, clipped to the range; November starts at local midnight (UTC+1 after DST ended)
    let w = calendar_windows(
        us("2026-10-15T12:00:00Z"),
        us("2026-12-10T00:00:00Z"),
        Period::Month,
        paris,
    );
    assert_eq!(
        w,
        vec![
            (us("2026-10-15T12:00:00Z"), us("2026-10-31T23:00:00Z")),
            (us("2026-10-31T23:00:00Z"), us("2026-11-30T23:00:00Z")),
            (us("2026-11-30T23:00:00Z"), us("2026-12-10T00:00:00Z")),
        ]
    );
    // the day DST ends is 25 hours long
    let days = calendar_windows(
        us("2026-10-24T22:00:00Z"),
        us("2026-10-26T23:00:00Z"),
        Period::Day,
        paris,
    );
    assert_eq!(
        days[0],
        (us("2026-10-24T22:00:00Z"), us("2026-10-25T23:00:00Z"))
    );
    assert_eq!(
        days[1],
        (us("2026-10-25T23:00:00Z"), us("2026-10-26T23:00:00Z"))
    );
    assert_eq!(days.len(), 2);
    // ISO weeks start on Monday
    let weeks = calendar_windows(
        us("2026-11-25T00:00:00Z"),
        us("2026-12-08T00:00:00Z"),
        Period::Week,
        parse_tz("UTC").unwrap(),
    );
    assert_eq!(weeks[0].1, us("2026-11-30T00:00:00Z"));
    assert!(parse_tz("Mars/Olympus").is_err());
}
