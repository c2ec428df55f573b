//! CDR files as CUCM writes them (`cucm-sources.md` §3): the documented example file, the
//! 129-column layout, a file without its names line, quoting, signed IP integers, a
//! consultation transfer's three records, and recording legs.

use callstate_cucm::cdr::map::{Splits, events};
use callstate_cucm::cdr::record::{Record, read};
use callstate_schemas::{Body, CallStateKind};

fn example() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/cdr/cdr_CLA_02_202611020921_417"
    ))
    .unwrap()
}

/// Replaces named fields of a record line (by the header's names) and returns the new line.
fn with(header: &str, line: &str, changes: &[(&str, &str)]) -> String {
    let names: Vec<&str> = header.split(',').map(|n| n.trim_matches('"')).collect();
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes());
    let rec = rdr.records().next().unwrap().unwrap();
    let mut fields: Vec<String> = rec.iter().map(str::to_string).collect();
    for (k, v) in changes {
        let i = names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(k))
            .unwrap();
        fields[i] = (*v).to_string();
    }
    let mut w = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::NonNumeric)
        .from_writer(Vec::new());
    w.write_record(&fields).unwrap();
    String::from_utf8(w.into_inner().unwrap())
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn the_documented_example_reads_and_maps_as_documented() {
    let f = read(example().as_bytes()).unwrap();
    assert_eq!(f.columns, 133);
    assert!(f.errors.is_empty(), "{:?}", f.errors);
    assert_eq!(f.records.len(), 2);
    let r = &f.records[0];
    assert_eq!(
        (
            r.orig_device.as_str(),
            r.dest_device.as_str(),
            r.calling.as_str()
        ),
        ("SEP00CAFE000101", "SEP00CAFE000107", "4101")
    );
    assert_eq!(r.orig_ip.unwrap().to_string(), "10.40.1.200");
    assert_eq!(r.duration, 82);
    let ev = events(r, &mut Splits::default());
    let kinds: Vec<String> = ev
        .iter()
        .map(|(i, p)| {
            format!(
                "{i}:{:?}@{}",
                std::mem::discriminant(&p.body),
                p.time.format("%H:%M:%S")
            )
        })
        .collect();
    assert_eq!(ev.len(), 6, "{kinds:?}");
    match &ev.iter().find(|(i, _)| *i == 5).unwrap().1.body {
        Body::CallEnded { device, cause, .. } => {
            assert_eq!(device, "SEP00CAFE000101");
            assert_eq!(cause.as_str(), "normal_call_clearing");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ev[0].1.time.to_rfc3339(), "2026-11-02T09:20:03+00:00");
    assert_eq!(
        ev.iter()
            .find(|(i, _)| *i == 5)
            .unwrap()
            .1
            .time
            .to_rfc3339(),
        "2026-11-02T09:21:30+00:00"
    );
    // row 2: busy, never connected: failed, ended user_busy
    let ev = events(&f.records[1], &mut Splits::default());
    assert!(ev.iter().any(|(_, p)| matches!(
        &p.body,
        Body::CallState {
            state: CallStateKind::Failed,
            ..
        }
    )));
    assert!(ev.iter().any(
        |(_, p)| matches!(&p.body, Body::CallEnded { cause, .. } if cause.as_str() == "user_busy")
    ));
}

#[test]
fn layouts_quoting_and_bad_rows() {
    let text = example();
    let lines: Vec<&str> = text.lines().collect();
    // the 129-column layout: the first 129 names
    let cut = |l: &str, n: usize| -> String {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(l.as_bytes());
        let rec = rdr.records().next().unwrap().unwrap();
        let mut w = csv::WriterBuilder::new()
            .quote_style(if l.starts_with("INTEGER") {
                csv::QuoteStyle::Never
            } else {
                csv::QuoteStyle::NonNumeric
            })
            .from_writer(Vec::new());
        w.write_record(rec.iter().take(n)).unwrap();
        String::from_utf8(w.into_inner().unwrap())
            .unwrap()
            .trim_end()
            .to_string()
    };
    let old: Vec<String> = lines.iter().map(|l| cut(l, 129)).collect();
    let f = read(old.join("\n").as_bytes()).unwrap();
    assert_eq!((f.columns, f.records.len(), f.errors.len()), (129, 2, 0));
    // no names line: the types line first
    let f = read(lines[1..].join("\n").as_bytes()).unwrap();
    assert_eq!((f.columns, f.records.len()), (133, 2));
    assert_eq!(f.records[0].orig_device, "SEP00CAFE000101");
    // a comma and doubled quotes inside a quoted field; a bad integer; a short row
    let quoted = with(lines[0], lines[2], &[("callingPartyNumber", "41\"0\"1,x")]);
    let bad = with(lines[0], lines[3], &[("duration", "eight")]);
    let short = "1,2,3";
    let file = [lines[0], lines[1], &quoted, &bad, short].join("\n");
    let f = read(file.as_bytes()).unwrap();
    assert_eq!(f.records.len(), 1);
    assert_eq!(f.records[0].calling, "41\"0\"1,x");
    assert_eq!(f.errors.len(), 2, "{:?}", f.errors);
    assert_eq!(f.errors[0].field.as_deref(), Some("duration"));
    assert_eq!(f.errors[0].row, 2);
    assert!(read(b"hello\nworld\n").is_err());
}

#[test]
fn a_consultation_transfer_is_found_from_its_three_records_and_recordings_are_skipped() {
    let text = example();
    let lines: Vec<&str> = text.lines().collect();
    let (h, base) = (lines[0], lines[2]);
    // A (101) talks to B (102), consults C (103 → 104), completes: B (102) ↔ C (104)
    let original = with(
        h,
        base,
        &[
            ("globalCallID_callId", "500"),
            ("origLegCallIdentifier", "101"),
            ("destLegIdentifier", "102"),
            ("origDeviceName", "SEPA"),
            ("destDeviceName", "SEPB"),
            ("finalCalledPartyNumber", "4102"),
            ("dateTimeOrigination", "1793611000"),
            ("dateTimeConnect", "1793611005"),
            ("dateTimeDisconnect", "1793611100"),
            ("origCause_value", "393216"),
            ("destCause_value", "393216"),
            ("origCallTerminationOnBehalfOf", "10"),
            ("destCallTerminationOnBehalfOf", "10"),
        ],
    );
    let consult = with(
        h,
        base,
        &[
            ("globalCallID_callId", "501"),
            ("origLegCallIdentifier", "103"),
            ("destLegIdentifier", "104"),
            ("origDeviceName", "SEPA"),
            ("destDeviceName", "SEPC"),
            ("finalCalledPartyNumber", "4103"),
            ("originalCalledPartyNumber", "4103"),
            ("duration", "30"),
            ("dateTimeOrigination", "1793611060"),
            ("dateTimeConnect", "1793611065"),
            ("dateTimeDisconnect", "1793611100"),
            ("origCause_value", "393216"),
            ("destCause_value", "393216"),
            ("origCallTerminationOnBehalfOf", "10"),
            ("destCallTerminationOnBehalfOf", "10"),
        ],
    );
    let final_ = with(
        h,
        base,
        &[
            ("globalCallID_callId", "502"),
            ("origLegCallIdentifier", "102"),
            ("destLegIdentifier", "104"),
            ("origDeviceName", "SEPB"),
            ("destDeviceName", "SEPC"),
            ("joinOnBehalfOf", "10"),
            ("dateTimeOrigination", "1793611000"),
            ("dateTimeConnect", "1793611100"),
            ("dateTimeDisconnect", "1793611300"),
            ("origCause_value", "0"),
            ("destCause_value", "16"),
        ],
    );
    let recording = with(
        h,
        base,
        &[
            ("globalCallID_callId", "503"),
            ("origCallTerminationOnBehalfOf", "27"),
            ("origDeviceName", "SEPA"),
        ],
    );
    // the split records arrive in one file, the final record in a later one
    let first = read(
        [h, lines[1], &original, &consult, &recording]
            .join("\n")
            .as_bytes(),
    )
    .unwrap();
    let second = read([h, lines[1], &final_].join("\n").as_bytes()).unwrap();
    let mut splits = Splits::default();
    let mut all: Vec<Record> = first.records.clone();
    all.extend(second.records.clone());
    let evs: Vec<_> = all.iter().flat_map(|r| events(r, &mut splits)).collect();
    let transfers: Vec<_> = evs
        .iter()
        .filter_map(|(_, p)| match &p.body {
            Body::TransferCompleted {
                call_id,
                consult_call_id,
                device,
                transferred_to,
            } => Some((
                call_id.clone(),
                consult_call_id.clone(),
                device.clone(),
                transferred_to.clone(),
                p.time.timestamp(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        transfers,
        vec![(
            first.records[0].call_id(),
            first.records[1].call_id(),
            "SEPA".to_string(),
            Some("4103".to_string()),
            1_793_611_100,
        )]
    );
    // the split legs end as call_split; the recording leg produced nothing
    assert!(evs.iter().any(|(_, p)| matches!(&p.body, Body::CallEnded { cause, device, .. } if cause.as_str() == "call_split" && device == "SEPB")));
    assert_eq!(events(&first.records[2], &mut Splits::default()).len(), 0);
}
