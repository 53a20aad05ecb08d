//! Manifests, key states and the chain that makes an untrusted target's tampering
//! visible. Pure: the repository reads the objects, this judges them.
//!
//! Each manifest has a sequence number one above the highest one on the target, the
//! SHA-256 of its predecessor's JSON (`prev`), and `live`: the sets, with their
//! hashes, that must still exist beside it. The newest manifest is the head; a set
//! deleted, replaced or renamed below it is caught against the head's list, and the
//! head itself against the appliance's own record of the newest set it wrote
//! ([`Seen`], kept outside the target): a target that deletes its newest sets or is
//! rolled back to an older state as a whole is caught there.

use super::object::set_name;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetKind {
    /// A backup: tables and files.
    Backup,
    /// A record that sets were dropped by retention (no content).
    Prune,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRef {
    pub seq: u64,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRef {
    pub id: String,
    /// Plaintext length.
    pub len: u64,
}

/// One stream of a set: a table of the database, or the appliance's key files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamEntry {
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
    pub blobs: Vec<BlobRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetStats {
    /// Bytes of all streams (before compression and encryption).
    pub bytes: u64,
    pub blobs: u64,
    /// Blobs and stored bytes this set added to the target (the rest it shares).
    pub new_blobs: u64,
    pub new_stored_bytes: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub repo_id: String,
    pub seq: u64,
    /// SHA-256 (hex) of the JSON of the set `seq - 1`; `None` for the first.
    pub prev: Option<String>,
    pub kind: SetKind,
    pub created_at_ms: i64,
    /// The key store the database is bound to, and its schema version.
    pub keystore_id: String,
    pub schema_version: u64,
    pub appliance_version: String,
    /// The key state written with this set.
    pub keystate: Option<SetRef>,
    /// Streams in restore order: every table, then `files`.
    pub streams: Vec<StreamEntry>,
    /// Earlier sets that must still exist, oldest first.
    pub live: Vec<SetRef>,
    pub stats: SetStats,
}

impl Manifest {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

pub fn hash(json: &[u8]) -> String {
    hex::encode(Sha256::digest(json))
}

/// The meeting keys (wrapped by the master key, as on disk), the erasure logs and
/// the key store's ids, as of the newest backup: a restore of any set uses the newest
/// key state, so what was erased since the set was made stays erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyState {
    pub repo_id: String,
    pub seq: u64,
    pub created_at_ms: i64,
    pub keystore_id: String,
    pub master_key_id: String,
    /// Path in the key directory → base64 of the file.
    pub files: BTreeMap<String, String>,
}

/// The appliance's record of the newest set it wrote to a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seen {
    pub seq: u64,
    pub hash: String,
    /// The newest key state written (by a backup or after an erasure).
    #[serde(default)]
    pub keystate: u64,
}

/// A set as found on the target: its manifest and the hash of its JSON, or why it
/// could not be read.
pub type Found = Result<(Manifest, String), String>;

/// Something wrong with the target, naming the object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub object: String,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.what)
    }
}

fn problem(object: impl Into<String>, what: impl Into<String>) -> Problem {
    Problem {
        object: object.into(),
        what: what.into(),
    }
}

/// The chain as judged: the head (the newest authentic set), the sets that are
/// good and listed by it (oldest first, the head last), and the problems.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    pub head: Option<(Manifest, String)>,
    pub live: Vec<(Manifest, String)>,
    pub problems: Vec<Problem>,
}

/// Judges the sets found on a target (by the sequence number their object name
/// carries) against each other and against `seen`.
pub fn judge(repo_id: &str, found: &BTreeMap<u64, Found>, seen: Option<&Seen>) -> Chain {
    let mut chain = Chain::default();
    let mut good: BTreeMap<u64, (Manifest, String)> = BTreeMap::new();
    for (&seq, f) in found {
        match f {
            Err(why) => chain.problems.push(problem(set_name(seq), why.clone())),
            Ok((m, _)) if m.repo_id != repo_id => chain.problems.push(problem(
                set_name(seq),
                format!("belongs to another repository ({})", m.repo_id),
            )),
            Ok((m, _)) if m.seq != seq => chain.problems.push(problem(
                set_name(seq),
                format!("holds set {} (moved or replaced)", m.seq),
            )),
            Ok(ok) => {
                good.insert(seq, ok.clone());
            }
        }
    }
    let head = good.values().next_back().cloned();
    if let Some(s) = seen {
        match &head {
            None => chain.problems.push(problem(
                set_name(s.seq),
                "missing: the appliance wrote it, and the target holds no set (deleted, or the target was rolled back)",
            )),
            Some((h, _)) if h.seq < s.seq => chain.problems.push(problem(
                set_name(s.seq),
                format!(
                    "missing: the appliance wrote it, and the target's newest set is {} (deleted, or the target was rolled back)",
                    h.seq
                ),
            )),
            Some((h, hh)) if h.seq == s.seq && *hh != s.hash => chain.problems.push(problem(
                set_name(s.seq),
                "replaced: it is not the set the appliance wrote",
            )),
            _ => {}
        }
    }
    let Some((h, hh)) = head else {
        return chain;
    };
    for r in &h.live {
        if r.seq >= h.seq {
            chain.problems.push(problem(
                set_name(h.seq),
                format!("lists a set ({}) that is not older than itself", r.seq),
            ));
            continue;
        }
        match (found.get(&r.seq), good.get(&r.seq)) {
            (None, _) => chain.problems.push(problem(
                set_name(r.seq),
                format!("missing: set {} lists it as kept", h.seq),
            )),
            (Some(_), None) => {} // already reported above
            (Some(_), Some((_, gh))) if *gh != r.hash => chain.problems.push(problem(
                set_name(r.seq),
                format!("replaced: its hash is not the one set {} lists", h.seq),
            )),
            (Some(_), Some(ok)) => chain.live.push(ok.clone()),
        }
    }
    // Consecutive sets must link: `prev` is the hash of the one before.
    let mut with_head = chain.live.clone();
    with_head.push((h.clone(), hh.clone()));
    for pair in with_head.windows(2) {
        let ((a, ah), (b, _)) = (&pair[0], &pair[1]);
        if b.seq == a.seq + 1 && b.prev.as_deref() != Some(ah.as_str()) {
            chain.problems.push(problem(
                set_name(b.seq),
                format!("does not follow set {}: its link to it differs", a.seq),
            ));
        }
    }
    chain.live.push((h.clone(), hh.clone()));
    chain.head = Some((h, hh));
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn manifest(seq: u64, prev: Option<String>, live: Vec<SetRef>) -> Manifest {
        Manifest {
            repo_id: "r".into(),
            seq,
            prev,
            kind: SetKind::Backup,
            created_at_ms: seq as i64,
            keystore_id: "k".into(),
            schema_version: 6,
            appliance_version: "0".into(),
            keystate: None,
            streams: vec![],
            live,
            stats: SetStats::default(),
        }
    }

    /// `n` sets written one after the other, each keeping all before it.
    fn written(n: u64) -> (BTreeMap<u64, Found>, Seen) {
        let mut found = BTreeMap::new();
        let mut live: Vec<SetRef> = vec![];
        let mut prev = None;
        let mut seen = None;
        for seq in 1..=n {
            let m = manifest(seq, prev.clone(), live.clone());
            let h = hash(&m.to_json());
            live.push(SetRef {
                seq,
                hash: h.clone(),
            });
            prev = Some(h.clone());
            seen = Some(Seen {
                seq,
                hash: h.clone(),
                keystate: 0,
            });
            found.insert(seq, Ok((m, h)));
        }
        (found, seen.unwrap())
    }

    #[test]
    fn an_untouched_chain_has_no_problems() {
        let (found, seen) = written(5);
        let c = judge("r", &found, Some(&seen));
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.live.len(), 5);
        assert_eq!(c.head.unwrap().0.seq, 5);
    }

    proptest! {
        #[test]
        fn deleting_any_set_is_caught_and_named(n in 1u64..8, pick in any::<u64>()) {
            let (mut found, seen) = written(n);
            let gone = 1 + pick % n;
            found.remove(&gone);
            let c = judge("r", &found, Some(&seen));
            prop_assert!(c.problems.iter().any(|p| p.object == set_name(gone)), "{:?}", c.problems);
        }

        #[test]
        fn replacing_any_set_with_another_is_caught(n in 2u64..8, a in any::<u64>(), b in any::<u64>()) {
            let (mut found, seen) = written(n);
            let (x, y) = (1 + a % n, 1 + b % n);
            prop_assume!(x != y);
            let older = found[&y].clone();
            found.insert(x, older);
            let c = judge("r", &found, Some(&seen));
            prop_assert!(c.problems.iter().any(|p| p.object == set_name(x)), "{:?}", c.problems);
        }

        #[test]
        fn rolling_the_whole_target_back_is_caught(n in 2u64..8, keep in any::<u64>()) {
            let (found, seen) = written(n);
            let keep = 1 + keep % (n - 1);
            let older: BTreeMap<u64, Found> = found.into_iter().filter(|(s, _)| *s <= keep).collect();
            let c = judge("r", &older, Some(&seen));
            prop_assert!(c.problems.iter().any(|p| p.object == set_name(n)), "{:?}", c.problems);
        }
    }

    #[test]
    fn a_set_no_longer_listed_is_no_problem_but_is_not_live() {
        let (mut found, seen) = written(3);
        // A prune record dropped set 1 but its deletion was cut short.
        let (m3, h3) = found[&3].clone().unwrap();
        let mut m4 = manifest(
            4,
            Some(h3.clone()),
            vec![m3.live[1].clone(), SetRef { seq: 3, hash: h3 }],
        );
        m4.kind = SetKind::Prune;
        let h4 = hash(&m4.to_json());
        found.insert(4, Ok((m4, h4.clone())));
        let c = judge(
            "r",
            &found,
            Some(&Seen {
                seq: 4,
                hash: h4,
                keystate: 0,
            }),
        );
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(
            c.live.iter().map(|(m, _)| m.seq).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        let _ = seen;
    }
}
