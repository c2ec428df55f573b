//! The architecture as tests: which crates each crate may pull in, no module cycles inside
//! any crate, and contract facts (kind names, state names) written only in `schemas`.
//! docs/architecture.md draws what these enforce.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The packages in `package`'s normal dependency tree.
fn dependency_tree(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .args(["-p", package])
        .current_dir(root())
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn crates_pull_in_only_what_their_layer_needs() {
    let http_and_kafka = [
        "axum",
        "utoipa",
        "tower-http",
        "prometheus-client",
        "rdkafka",
    ];
    for (package, forbidden) in [
        ("callstate-query", http_and_kafka.to_vec()),
        (
            "callstate-log",
            [&http_and_kafka[..], &["datafusion"]].concat(),
        ),
        (
            "callstate-schemas",
            [&http_and_kafka[..], &["datafusion", "parquet"]].concat(),
        ),
        (
            "callstate-sim",
            [&http_and_kafka[..], &["datafusion", "parquet"]].concat(),
        ),
        (
            "callstate-bench",
            vec![
                "axum",
                "utoipa",
                "tower-http",
                "prometheus-client",
                "rdkafka",
                "callstate-server",
            ],
        ),
        (
            "callstate-ingest",
            vec!["axum", "utoipa", "datafusion", "callstate-query"],
        ),
        ("callstate-server", vec!["rdkafka"]),
        // the CUCM collectors: HTTP client side only, nothing of the query side or Kafka
        (
            "callstate-cucm",
            vec![
                "axum",
                "utoipa",
                "datafusion",
                "callstate-query",
                "rdkafka",
                "callstate-sim",
                "callstate-mockcucm",
            ],
        ),
        // reports and SLO rules: model functions in, text out; no HTTP, no Kafka
        (
            "callstate-report",
            [
                &http_and_kafka[..],
                &["callstate-server", "callstate-ingest"],
            ]
            .concat(),
        ),
        // the mock cluster writes its wire format on its own: never the poller's code
        (
            "callstate-mockcucm",
            vec!["callstate-cucm", "reqwest", "datafusion", "rdkafka"],
        ),
    ] {
        let tree = dependency_tree(package);
        assert!(tree.contains(package), "{package}: {tree:?}");
        for f in forbidden {
            assert!(!tree.contains(f), "{package} depends on {f}");
        }
    }
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A file's module path (`log::append`); the crate root is "".
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .filter(|c| c != "mod")
        .collect();
    if parts == ["lib"] || parts == ["main"] {
        return String::new();
    }
    parts.join("::")
}

/// The code of a file without comments, string contents and its inline test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        // re-exports are the crate's face, not a dependency of the module
        let t = line.trim_start();
        if t.starts_with("pub use ") || t.starts_with("pub(crate) use ") {
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut in_str = false;
        for (i, &c) in chars.iter().enumerate() {
            let char_literal = i > 0 && chars[i - 1] == '\'' && chars.get(i + 1) == Some(&'\'');
            let escaped = in_str && i > 0 && chars[i - 1] == '\\';
            if c == '"' && !char_literal && !escaped {
                in_str = !in_str;
            } else if !in_str {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

/// The paths a module's code names: `crate::a::b`, `super::c`, `self::d`, with braces
/// expanded (`crate::{a, b::c}`), resolved to absolute module paths.
fn referenced_paths(module: &str, code: &str) -> Vec<Vec<String>> {
    let here: Vec<String> = if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").map(str::to_string).collect()
    };
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            if at > 0 && (ident(bytes[at - 1]) || bytes[at - 1] == b':') {
                continue;
            }
            let mut base = match start {
                "crate::" => Vec::new(),
                "super::" => here[..here.len().saturating_sub(1)].to_vec(),
                _ => here.clone(),
            };
            // more leading `super::`
            let mut rest = &code[from..];
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            collect_paths(base, rest, &mut out);
        }
    }
    out
}

/// Paths starting at `text` (after a `::`), appended to `base`.
fn collect_paths(base: Vec<String>, text: &str, out: &mut Vec<Vec<String>>) {
    let text = text.trim_start();
    if let Some(inner) = text.strip_prefix('{') {
        // split the group at top-level commas
        let mut depth = 0;
        let mut part = String::new();
        for c in inner.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    collect_paths(base.clone(), &std::mem::take(&mut part), out);
                    continue;
                }
                _ => {}
            }
            part.push(c);
        }
        collect_paths(base, &part, out);
        return;
    }
    let mut path = base;
    let mut rest = text;
    loop {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        path.push(rest[..end].to_string());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(r) if r.starts_with('{') => return collect_paths(path, r, out),
            Some(r) => rest = r,
            None => break,
        }
    }
    out.push(path);
}

/// Cycles among a crate's modules (each as a list of module paths).
fn module_cycles(src: &Path) -> Vec<Vec<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .iter()
        .map(|f| (module_of(src, f), f.clone()))
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, f) in &modules {
        let text = std::fs::read_to_string(f).unwrap();
        for path in referenced_paths(m, &code(&text)) {
            // the longest prefix that is a module file
            let target = (0..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|p| modules.contains_key(p));
            if let Some(t) = target
                && t != *m
                && !t.is_empty()
            {
                edges.entry(m.clone()).or_default().insert(t);
            }
        }
    }
    // every cycle through the strongly connected components (Tarjan)
    struct Tarjan<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on: BTreeSet<String>,
        sccs: Vec<Vec<String>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: &str) {
            let i = self.index.len();
            self.index.insert(v.into(), i);
            self.low.insert(v.into(), i);
            self.stack.push(v.into());
            self.on.insert(v.into());
            for w in self.edges.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[v].min(self.low[w]);
                    self.low.insert(v.into(), l);
                } else if self.on.contains(w) {
                    let l = self.low[v].min(self.index[w]);
                    self.low.insert(v.into(), l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(&w);
                    let done = w == v;
                    scc.push(w);
                    if done {
                        break;
                    }
                }
                if scc.len() > 1 {
                    self.sccs.push(scc);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        sccs: Vec::new(),
    };
    for m in modules.keys() {
        if !t.index.contains_key(m) {
            t.visit(m);
        }
    }
    t.sccs
}

const CRATES: &[&str] = &[
    "schemas", "log", "ingest", "query", "server", "sim", "cucm", "mockcucm", "report", "bench",
    ".",
];

#[test]
fn no_module_cycles_in_any_crate() {
    let mut found = Vec::new();
    for c in CRATES {
        for cycle in module_cycles(&root().join(c).join("src")) {
            found.push(format!("{c}: {}", cycle.join(" <-> ")));
        }
    }
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\npub use a::X;\n").unwrap();
    std::fs::write(
        src.join("a/mod.rs"),
        "mod c;\nuse crate::{b::Y, a::c::Z};\n",
    )
    .unwrap();
    std::fs::write(
        src.join("a/c.rs"),
        "// crate::b in a comment\nuse super::super::b;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("b.rs"),
        "fn f() { let _ = \"crate::a\"; }\nuse self::q;\n",
    )
    .unwrap();
    assert!(module_cycles(&src).is_empty(), "{:?}", module_cycles(&src));
    std::fs::write(src.join("b.rs"), "fn f() -> crate::a::c::Z { todo!() }\n").unwrap();
    let cycles = module_cycles(&src);
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    let mut c = cycles[0].clone();
    c.sort();
    assert_eq!(c, ["a::c", "b"]);
}

#[test]
fn contract_names_are_written_only_in_schemas() {
    use callstate_schemas::{Kind, KnownCause, Movement, ServiceState};
    // `unknown` is also an ordinary word (an unknown kind in metrics, a missing name)
    let names: Vec<&str> = Kind::NAMES
        .iter()
        .chain(ServiceState::NAMES)
        .chain(Movement::NAMES)
        .chain(KnownCause::NAMES)
        .copied()
        .filter(|n| *n != "unknown")
        .collect();
    let mut found = Vec::new();
    for c in CRATES.iter().filter(|c| **c != "schemas") {
        let mut files = Vec::new();
        rust_files(&root().join(c).join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let text = match text.find("#[cfg(test)]") {
                Some(i) => &text[..i],
                None => &text,
            };
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for name in &names {
                    if line.contains(&format!("\"{name}\"")) {
                        found.push(format!("{}:{}: \"{name}\"", f.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "contract names as literals outside schemas (use Kind, ServiceState, Movement, KnownCause):\n{}",
        found.join("\n")
    );
}
