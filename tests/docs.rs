//! The docs stay true to the code: every test docs/reliability.md names as the proof of a row
//! exists in the workspace (a renamed or deleted test makes its row a claim without proof).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The text of every Rust file under a `tests` folder of the workspace, and the unit-test
/// modules (`#[cfg(test)]` onwards) of the others.
fn test_sources(dir: &Path, out: &mut String) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy();
        if p.is_dir() && name != "target" && !name.starts_with('.') {
            test_sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            if p.components().any(|c| c.as_os_str() == "tests") {
                out.push_str(&text);
            } else if let Some(i) = text.find("#[cfg(test)]") {
                // unit tests inside a source file
                out.push_str(&text[i..]);
            }
        }
    }
}

/// The backquoted names in the last column of the tables of `doc`.
fn named_tests(doc: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_end_matches('|').split('|').collect();
        let last = cells.last().unwrap();
        for (i, piece) in last.split('`').enumerate() {
            if i % 2 == 1 && piece.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                names.push(piece.to_string());
            }
        }
    }
    names
}

#[test]
fn every_test_docs_reliability_names_exists() {
    let doc = std::fs::read_to_string(root().join("docs/reliability.md")).unwrap();
    let names = named_tests(&doc);
    assert!(names.len() >= 15, "the table names its tests: {names:?}");
    let mut sources = String::new();
    test_sources(&root(), &mut sources);
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !sources.contains(&format!("fn {n}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/reliability.md names tests that do not exist: {missing:?}"
    );
}
