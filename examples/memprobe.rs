// throwaway: not committed
use callstate_log::{Log, LogOptions};
use callstate_query::Cancel;
use callstate_query::Live;
use callstate_query::model::fleet::Fleet;
use callstate_query::model::sla::{GroupBy, availability_over};
use std::time::Duration;

fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("RssAnon"))
        .collect()
}

fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let log = Log::open(
        &dir,
        LogOptions {
            segment_rows: callstate_log::DEFAULT_SEGMENT_ROWS,
        },
    )
    .unwrap();
    eprintln!("log open {}", rss());
    let live = Live::start(&log, Default::default()).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let v = live.view();
    eprintln!("started {} {:?}", rss(), v.memory());
    if std::env::args().nth(2).is_some() {
        availability_over(
            v.devices(),
            v.windows(),
            &[(1761955200000000, 1793491200000000)],
            GroupBy::DevicePool,
            &Cancel::new(),
        )
        .unwrap();
        eprintln!("rolled {} {:?}", rss(), v.memory());
    }
    std::process::exit(0);
}
