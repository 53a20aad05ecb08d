//! Architecture, enforced lightly: every module says what it is (`//!`), the protocol
//! crate does no I/O, the domain imports no transport, and only the store touches redb.

use roomscribe_tests::repo_root;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn code(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn every_module_has_a_doc_comment() {
    let mut missing = Vec::new();
    for dir in [
        "protocol/src",
        "config-layers/src",
        "appliance/src",
        "agent/src",
        "tests/src",
        "tests/e2e",
    ] {
        for f in rust_files(&repo_root().join(dir)) {
            if f.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            if !code(&f).trim_start().starts_with("//!") {
                missing.push(f.display().to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "modules without a //! doc: {missing:#?}"
    );
}

fn forbid(dir: &str, needles: &[&str]) {
    for f in rust_files(&repo_root().join(dir)) {
        let text = code(&f);
        for n in needles {
            assert!(
                !text.contains(n),
                "{} mentions {n:?}, which {dir} must not use",
                f.display()
            );
        }
    }
}

#[test]
fn layers_keep_to_themselves() {
    // Code paths, not words: doc comments may name what a layer must not use.
    let io = [
        "tokio::", "quinn::", "axum::", "redb::", "cpal::", "std::fs", "std::net",
    ];
    forbid("protocol/src", &io);
    forbid(
        "appliance/src/domain",
        &["axum::", "quinn::", "redb::", "tantivy::"],
    );
    forbid("appliance/src/http", &["store::Store", "redb::", "quinn::"]);
    forbid(
        "appliance/src/ingest",
        &["store::Store", "redb::", "axum::"],
    );
    // Time enters the rules through the injected clock only.
    for f in rust_files(&repo_root().join("appliance/src/domain")) {
        if !f.ends_with("clock.rs") {
            assert!(
                !code(&f).contains("SystemTime::now") && !code(&f).contains("Instant::now"),
                "{} reads the time itself; rules take it from domain::clock",
                f.display()
            );
        }
    }
    for f in rust_files(&repo_root().join("appliance/src")) {
        if !f.starts_with(repo_root().join("appliance/src/store")) {
            assert!(
                !code(&f).contains("redb::"),
                "{} uses redb outside store/",
                f.display()
            );
        }
    }
}
