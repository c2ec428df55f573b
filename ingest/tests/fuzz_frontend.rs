//! Fuzzing the collectors' front end (the event parser behind every transport): mutated
//! valid lines, random bytes, huge numbers, deep nesting, invalid UTF-8 and long strings.
//! Nothing panics, and every line is accounted for: an event, a blank line, or a reject that
//! names its line (and its field when one field is at fault).
//!
//! Bounded for CI; a longer run: `PROPTEST_CASES=100000 cargo test -p callstate-ingest --test fuzz_frontend`.

use callstate_ingest::frontend::{MAX_LINE_BYTES, parse_body, parse_lines};
use chrono::{DateTime, Utc};
use proptest::prelude::*;

fn now() -> DateTime<Utc> {
    "2026-11-24T12:00:00Z".parse().unwrap()
}

fn valid_lines() -> Vec<String> {
    let t0 = "2026-11-24T08:00:00Z".parse().unwrap();
    callstate_sim::synthetic::events(64, 9, t0)
        .iter()
        .map(|e| e.to_json())
        .collect()
}

/// Values a hostile sender puts where a field's value goes.
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1e400".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        Just("99999999999999999999999999999999999999".to_string()),
        Just("null".to_string()),
        Just("{}".to_string()),
        Just("[]".to_string()),
        Just("true".to_string()),
        Just("\"\"".to_string()),
        Just("\"\\ud800\"".to_string()),
        (1usize..5_000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
        (1usize..2_000).prop_map(|n| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n))),
        (1usize..200_000).prop_map(|n| format!("\"{}\"", "x".repeat(n))),
        "\"[^\"\\\\]{0,40}\"".prop_map(|s| s),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Insert(usize, u8),
    Replace(usize, u8),
    Duplicate(usize, usize),
    /// A field's value replaced (the n-th `:` of the line).
    Value(usize, String),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        (any::<usize>(), hostile_value()).prop_map(|(i, v)| Mutation::Value(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(line: &mut Vec<u8>, m: &Mutation) {
    let n = line.len().max(1);
    match m {
        Mutation::Delete(i) if !line.is_empty() => {
            line.remove(i % n);
        }
        Mutation::Insert(i, b) => line.insert(i % (line.len() + 1), *b),
        Mutation::Replace(i, b) if !line.is_empty() => line[i % n] = *b,
        Mutation::Duplicate(i, len) if !line.is_empty() => {
            let a = i % n;
            let b = (a + len).min(line.len());
            let part = line[a..b].to_vec();
            line.splice(a..a, part);
        }
        Mutation::Value(i, v) => {
            let colons: Vec<usize> = line
                .iter()
                .enumerate()
                .filter(|(_, c)| **c == b':')
                .map(|(k, _)| k)
                .collect();
            if let Some(&at) = colons.get(i % colons.len().max(1)) {
                let end = line[at + 1..]
                    .iter()
                    .position(|c| *c == b',' || *c == b'}')
                    .map_or(line.len(), |p| at + 1 + p);
                line.splice(at + 1..end, v.bytes());
            }
        }
        Mutation::Truncate(i) => line.truncate(i % n),
        _ => {}
    }
}

/// Every line is an event, a blank line or a reject naming its line; no line twice.
fn check_accounted(input: &[u8]) {
    let p = parse_lines("fuzz", input, now());
    let lines = input.split(|b| *b == b'\n').count() as u64
        - u64::from(input.ends_with(b"\n") || input.is_empty());
    let mut seen: Vec<u64> = p.lines.clone();
    for r in &p.rejects {
        assert!(
            r.line >= 1 && r.line <= lines.max(1),
            "line {} of {lines}",
            r.line
        );
        assert!(!r.reason.is_empty());
        assert_eq!(r.origin, "fuzz");
        if let Some(f) = &r.field {
            assert!(!f.is_empty());
        }
        assert!(
            r.raw.len() <= MAX_LINE_BYTES + 4,
            "a reject keeps at most the line"
        );
        seen.push(r.line);
    }
    seen.sort_unstable();
    let before = seen.len();
    seen.dedup();
    assert_eq!(before, seen.len(), "a line counted twice");
    assert_eq!(
        seen.len() as u64 + p.empty_lines,
        lines,
        "every line accounted for"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn mutated_valid_lines(pick in 0usize..64, muts in proptest::collection::vec(mutation(), 1..5)) {
        let lines = valid_lines();
        let mut line = lines[pick % lines.len()].clone().into_bytes();
        for m in &muts {
            apply(&mut line, m);
        }
        let mut input = line.clone();
        input.push(b'\n');
        input.extend_from_slice(lines[0].as_bytes());
        check_accounted(&input);
        // the same bytes as an HTTP body, NDJSON or a JSON array
        let _ = parse_body("fuzz", &input, false, now());
        let mut array = b"[".to_vec();
        array.extend_from_slice(&line);
        array.push(b']');
        let _ = parse_body("fuzz", &array, true, now());
    }

    #[test]
    fn random_bytes(input in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check_accounted(&input);
        let _ = parse_body("fuzz", &input, true, now());
    }

    #[test]
    fn random_text(input in "\\PC{0,600}") {
        check_accounted(input.as_bytes());
    }
}

#[test]
fn a_line_over_the_limit_is_one_reject() {
    let mut input = vec![b'{'; MAX_LINE_BYTES * 3];
    input.push(b'\n');
    check_accounted(&input);
}
