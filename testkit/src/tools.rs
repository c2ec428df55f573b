//! Programs some tests drive (Chromium, promtool, Prometheus): found on `PATH`, or the test
//! says why it is skipped and passes — unless `CALLSTATE_REQUIRE_TOOLS` is set (as `.ci/run`
//! does, after installing them), where a missing program fails the test.

use std::path::{Path, PathBuf};

/// The first of `names` on `PATH`; `None` (after saying so) when there is none and tools
/// are not required. `hint` says how to install it.
pub fn tool_or_skip(names: &[&str], hint: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    for name in names {
        for dir in path.split(':') {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    assert!(
        std::env::var_os("CALLSTATE_REQUIRE_TOOLS").is_none(),
        "{names:?}: none on PATH, and CALLSTATE_REQUIRE_TOOLS is set ({hint})"
    );
    eprintln!("SKIPPED: none of {names:?} on PATH ({hint})");
    None
}
