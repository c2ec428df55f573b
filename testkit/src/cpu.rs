//! The CPU time this process has used: how tests see that cancelled work really stopped.

use std::time::Duration;

/// CPU seconds (user + system) this process has used so far (Linux).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // after the `(comm)` field: state is field 3; utime and stime are fields 14 and 15
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds used over the next `window` (sleeping through it).
pub fn cpu_over(window: Duration) -> f64 {
    let a = cpu_seconds();
    std::thread::sleep(window);
    cpu_seconds() - a
}
