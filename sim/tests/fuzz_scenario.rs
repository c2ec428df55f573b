//! Fuzzing scenario files: mutated built-in scenarios never panic the parser, and every
//! refusal names where (a TOML line and column, or the field at fault).
//!
//! A longer run: `PROPTEST_CASES=100000 cargo test -p callstate-sim --test fuzz_scenario`.

use callstate_sim::{BUILT_IN, Scenario};
use proptest::prelude::*;

fn built_in_text(i: usize) -> String {
    let name = BUILT_IN[i % BUILT_IN.len()];
    std::fs::read_to_string(format!(
        "{}/scenarios/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[derive(Debug, Clone)]
enum Mutation {
    DropLine(usize),
    /// Replace the value of the n-th `key = value` line.
    Value(usize, String),
    Insert(usize, char),
    Truncate(usize),
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-1".to_string()),
        Just("1e400".to_string()),
        Just("18446744073709551616".to_string()),
        Just("\"\"".to_string()),
        Just("\"5q\"".to_string()),
        Just("\"-3h\"".to_string()),
        Just("\"99999999999d\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("nan".to_string()),
        Just("\"not-a-time\"".to_string()),
        (0u64..u64::MAX).prop_map(|n| n.to_string()),
        "\"[a-z0-9 ]{0,12}\"".prop_map(|s| s),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DropLine),
        (any::<usize>(), value()).prop_map(|(i, v)| Mutation::Value(i, v)),
        (any::<usize>(), any::<char>()).prop_map(|(i, c)| Mutation::Insert(i, c)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    match m {
        Mutation::DropLine(i) if !lines.is_empty() => {
            let n = lines.len();
            lines.remove(i % n);
        }
        Mutation::Value(i, v) => {
            let keyed: Vec<usize> = (0..lines.len())
                .filter(|k| lines[*k].contains(" = "))
                .collect();
            if let Some(&k) = keyed.get(i % keyed.len().max(1)) {
                let key = lines[k].split(" = ").next().unwrap().to_string();
                lines[k] = format!("{key} = {v}");
            }
        }
        Mutation::Insert(i, c) => {
            let joined = lines.join("\n");
            let mut chars: Vec<char> = joined.chars().collect();
            let at = i % (chars.len() + 1);
            chars.insert(at, *c);
            return chars.into_iter().collect();
        }
        Mutation::Truncate(i) => {
            let joined = lines.join("\n");
            let cut = joined
                .char_indices()
                .map(|(k, _)| k)
                .nth(i % joined.len().max(1))
                .unwrap_or(0);
            return joined[..cut].to_string();
        }
        _ => {}
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn mutated_scenarios_parse_or_say_where(pick in 0usize..16, muts in proptest::collection::vec(mutation(), 1..4)) {
        let mut text = built_in_text(pick);
        for m in &muts {
            text = apply(&text, m);
        }
        match Scenario::from_toml(&text) {
            Ok(sc) => {
                // what parses has a start and an end
                prop_assert!(sc.start_time().is_ok() && sc.end_time().is_ok());
            }
            Err(e) => {
                let msg = e.to_string();
                let says_where = msg.contains("line")
                    || msg.contains(':')
                    || msg.contains("topology")
                    || msg.contains("faults[");
                prop_assert!(says_where, "{}", msg);
            }
        }
    }
}
