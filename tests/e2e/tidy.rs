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

/// The wings of the agent a module under `agent/src/<wing>` names as `crate::…`.
fn agent_wings_named(wing: &str) -> Vec<(String, String)> {
    let wings = ["capture", "speech", "replication", "meeting"];
    let mut out = Vec::new();
    for f in rust_files(&repo_root().join("agent/src").join(wing)) {
        let text = code(&f);
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(|p| p.trim().split("::").next().unwrap_or(""))
                    .collect(),
                None => vec![rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or("")],
            };
            for n in names {
                if n != wing && (wings.contains(&n) || ["operator", "doctor"].contains(&n)) {
                    out.push((f.display().to_string(), n.to_owned()));
                }
            }
        }
    }
    out
}

#[test]
fn the_agents_wings_import_only_downstream() {
    // capture ← speech ← replication ← meeting: each wing may name only the wings
    // before it (and the shared clock, fs, config, identity, lock, supervisor), and
    // none names the operator commands or the doctor that sit on top.
    let allowed: [(&str, &[&str]); 4] = [
        ("capture", &[]),
        ("speech", &["capture"]),
        ("replication", &["capture", "speech"]),
        ("meeting", &["capture", "speech", "replication"]),
    ];
    let mut wrong = Vec::new();
    for (wing, may) in allowed {
        for (file, named) in agent_wings_named(wing) {
            if !may.contains(&named.as_str()) {
                wrong.push(format!("{file} names crate::{named}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the data flow: {wrong:#?}"
    );
    // The check itself sees imports, grouped or not.
    assert!(agent_wings_named("meeting")
        .iter()
        .any(|(_, n)| n == "replication"));
}
