//! Fuzzing the HTTP query parameters of every read endpoint against a real server: any
//! value (garbage, huge numbers, odd encodings) answers 200, or 4xx with a JSON error that
//! names the parameter at fault; never a 5xx, never a dropped connection.
//!
//! A longer run: `PROPTEST_CASES=20000 cargo test -p callstate-server --test fuzz_params`.

use std::sync::OnceLock;

use callstate_server::ServerConfig;
use proptest::prelude::*;

mod common;

use common::server::{Server, get, post_all};

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let (events, _) = common::simulate("node-failover", 20, 7);
        let s = Server::start(ServerConfig::default());
        post_all(&s, &events, 5_000, None);
        s
    })
}

const ENDPOINTS: &[&str] = &[
    "/api/v1/devices/D0001/state",
    "/api/v1/devices/D0001/timeline",
    "/api/v1/state",
    "/api/v1/state/series",
    "/api/v1/annotations",
    "/api/v1/availability",
    "/api/v1/sla",
    "/api/v1/incidents",
];

const PARAMS: &[&str] = &[
    "at",
    "known_at",
    "from",
    "to",
    "step",
    "group_by",
    "period",
    "tz",
    "format",
    "state",
    "on_home_node",
    "cluster",
    "device_pool",
    "node",
    "device",
    "home_node",
    "incident",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("now".to_string()),
        Just("2026-11-24T00:00:00Z".to_string()),
        Just("2026-11-25T00:00:00Z".to_string()),
        Just("1795478400000".to_string()),
        Just("99999999999999999999".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("1e308".to_string()),
        Just("1ms".to_string()),
        Just("0.000001".to_string()),
        Just("device_pool".to_string()),
        Just("month".to_string()),
        Just("Europe/Paris".to_string()),
        Just("true".to_string()),
        Just("csv".to_string()),
        Just("arrow".to_string()),
        Just("parquet".to_string()),
        Just(String::new()),
        Just("%FF%FE".to_string()),
        Just("%00".to_string()),
        "[ -~]{0,40}".prop_map(|s| s),
        "\\PC{0,20}".prop_map(|s| s),
    ]
}

fn encode(s: &str) -> String {
    // keep the raw `%XX` escapes the strategies write; encode everything else outside A-Za-z0-9
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'%' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(200)
    ))]

    #[test]
    fn any_parameters_answer_or_name_what_is_wrong(
        endpoint in 0usize..ENDPOINTS.len(),
        params in proptest::collection::vec((0usize..PARAMS.len(), value()), 0..5),
    ) {
        let s = server();
        let query: Vec<String> = params
            .iter()
            .map(|(p, v)| format!("{}={}", PARAMS[*p], encode(v)))
            .collect();
        let url = s.url(&format!("{}?{}", ENDPOINTS[endpoint], query.join("&")));
        let a = get(&url);
        prop_assert!(a.status < 500, "{url}: {} {}", a.status, a.text());
        if a.status >= 400 {
            let err = a.json()["error"].as_str().unwrap_or_default().to_string();
            prop_assert!(!err.is_empty(), "{url}: {}", a.text());
            if a.status == 400 {
                let named = PARAMS.iter().any(|p| err.contains(p)) || err.contains("query");
                prop_assert!(named, "{url}: {err}");
            }
        }
    }
}
