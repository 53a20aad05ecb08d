//! The objects of a backup repository, their names and their bytes. Pure: no I/O.
//!
//! - `config`: `{"config": {format, repo_id, key_id, created_at_ms}, "signature"}`,
//!   readable (it says which backup key the target needs), signed.
//! - `data/<2 hex>/<blob id>`: one chunk of a stream, `1 ‖ nonce ‖ AES-256-GCM(lz4(chunk))`
//!   with the id as associated data; the id is HMAC-SHA256 of the chunk under the
//!   blob-id key, so equal chunks are stored once and a name says nothing of content.
//! - `sets/<seq>`: a backup set's manifest; `keys/<seq>.a|b`: the key state (two
//!   copies). Both `1 ‖ nonce ‖ AES-256-GCM(signature ‖ JSON)`, the kind as associated
//!   data, the JSON signed with the backup key under a context string of its kind.
//!
//! Every object opens only with the backup key and fails to if any bit of it changed.

use super::key::BackupKey;
use crate::keyring::{open, seal};

const VERSION: u8 = 1;
pub const CONFIG: &str = "config";
pub const DATA: &str = "data/";
pub const SETS: &str = "sets/";
pub const KEYS: &str = "keys/";

/// What a sealed, signed object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Manifest,
    KeyState,
    Config,
}

impl Kind {
    fn context(self) -> &'static [u8] {
        match self {
            Kind::Manifest => b"roomscribe/backup/manifest/v1\0",
            Kind::KeyState => b"roomscribe/backup/keystate/v1\0",
            Kind::Config => b"roomscribe/backup/config/v1\0",
        }
    }
}

pub fn data_name(id: &str) -> String {
    format!("{DATA}{}/{id}", id.get(..2).unwrap_or("00"))
}

pub fn set_name(seq: u64) -> String {
    format!("{SETS}{seq:010}")
}

pub fn keys_name(seq: u64, copy: char) -> String {
    format!("{KEYS}{seq:010}.{copy}")
}

/// The sequence number a `sets/` or `keys/` name carries.
pub fn seq_of(name: &str) -> Option<u64> {
    let rest = name
        .strip_prefix(SETS)
        .or_else(|| name.strip_prefix(KEYS))?;
    let digits = rest.split('.').next()?;
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The blob id a `data/` name carries.
pub fn id_of(name: &str) -> Option<&str> {
    let id = name.strip_prefix(DATA)?.split_once('/')?.1;
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

fn blob_aad(id: &str) -> Vec<u8> {
    [b"roomscribe/backup/blob/v1\0".as_slice(), id.as_bytes()].concat()
}

pub fn seal_blob(key: &BackupKey, id: &str, plain: &[u8]) -> Vec<u8> {
    let packed = lz4_flex::compress_prepend_size(plain);
    let mut out = vec![VERSION];
    out.extend(seal(key.cipher(), &blob_aad(id), &packed));
    out
}

/// The chunk in a `data/` object, if it is authentic and is the chunk its id names.
pub fn open_blob(key: &BackupKey, id: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let rest = match bytes.split_first() {
        Some((&VERSION, rest)) => rest,
        _ => return Err("unknown object version".into()),
    };
    let packed = open(key.cipher(), &blob_aad(id), rest)
        .ok_or("does not open with the backup key (damaged, or another key)")?;
    let plain = lz4_flex::decompress_size_prepended(&packed)
        .map_err(|e| format!("does not decompress: {e}"))?;
    if key.blob_id(&plain) != id {
        return Err("holds another chunk than its name says".into());
    }
    Ok(plain)
}

pub fn seal_signed(key: &BackupKey, kind: Kind, json: &[u8]) -> Vec<u8> {
    let mut signed = key.sign(kind.context(), json).to_vec();
    signed.extend_from_slice(json);
    let mut out = vec![VERSION];
    out.extend(seal(key.cipher(), kind.context(), &signed));
    out
}

/// The signed JSON in a sealed object, if it is authentic.
pub fn open_signed(key: &BackupKey, kind: Kind, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let rest = match bytes.split_first() {
        Some((&VERSION, rest)) => rest,
        _ => return Err("unknown object version".into()),
    };
    let signed = open(key.cipher(), kind.context(), rest)
        .ok_or("does not open with the backup key (damaged, or another key)")?;
    let (sig, json) = signed
        .split_at_checked(64)
        .ok_or("too short to be signed")?;
    if !key.verify(kind.context(), json, sig) {
        return Err("its signature does not verify".into());
    }
    Ok(json.to_vec())
}

/// The readable, signed `config` object.
pub fn config_bytes(key: &BackupKey, config: &serde_json::Value) -> Vec<u8> {
    let json = serde_json::to_vec(config).unwrap_or_default();
    let sig = key.sign(Kind::Config.context(), &json);
    let mut out = serde_json::to_vec_pretty(&serde_json::json!({
        "config": config,
        "signature": hex::encode(sig),
    }))
    .unwrap_or_default();
    out.push(b'\n');
    out
}

/// The `config` object's content: `Err` says why it is not this key's.
pub fn open_config(key: &BackupKey, bytes: &[u8]) -> Result<serde_json::Value, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        config: serde_json::Value,
        signature: String,
    }
    let f: File = serde_json::from_slice(bytes).map_err(|e| format!("not a backup config: {e}"))?;
    let theirs = f
        .config
        .get("key_id")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if theirs != key.id() {
        return Err(format!(
            "made with backup key {theirs}, not with this appliance's backup key {}",
            key.id()
        ));
    }
    let json = serde_json::to_vec(&f.config).unwrap_or_default();
    let sig = hex::decode(&f.signature).unwrap_or_default();
    if !key.verify(Kind::Config.context(), &json, &sig) {
        return Err("its signature does not verify".into());
    }
    // Ed25519 signatures are deterministic: the object has exactly one form, so a
    // change the parser forgives (a hex digit's case) is caught too.
    if config_bytes(key, &f.config) != bytes {
        return Err("altered: not the bytes written".into());
    }
    Ok(f.config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> BackupKey {
        BackupKey::from_bytes(&[7u8; 32])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn blobs_round_trip_and_any_flipped_bit_is_caught(
            plain in proptest::collection::vec(any::<u8>(), 0..2000),
            bit in any::<usize>(),
        ) {
            let k = key();
            let id = k.blob_id(&plain);
            let sealed = seal_blob(&k, &id, &plain);
            prop_assert_eq!(open_blob(&k, &id, &sealed).unwrap(), plain);
            let mut bad = sealed.clone();
            let bit = bit % (bad.len() * 8);
            bad[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(open_blob(&k, &id, &bad).is_err());
        }

        #[test]
        fn signed_objects_round_trip_and_any_flipped_bit_is_caught(
            n in 0u64..1_000_000,
            bit in any::<usize>(),
        ) {
            let k = key();
            let json = serde_json::to_vec(&serde_json::json!({"seq": n})).unwrap();
            let sealed = seal_signed(&k, Kind::Manifest, &json);
            prop_assert_eq!(open_signed(&k, Kind::Manifest, &sealed).unwrap(), json.clone());
            prop_assert!(open_signed(&k, Kind::KeyState, &sealed).is_err());
            let mut bad = sealed.clone();
            let bit = bit % (bad.len() * 8);
            bad[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(open_signed(&k, Kind::Manifest, &bad).is_err());
        }
    }

    #[test]
    fn another_key_opens_nothing() {
        let (a, b) = (key(), BackupKey::from_bytes(&[8u8; 32]));
        let id = a.blob_id(b"chunk");
        assert_ne!(id, b.blob_id(b"chunk"), "blob ids are keyed");
        assert!(open_blob(&b, &id, &seal_blob(&a, &id, b"chunk")).is_err());
        let cfg = serde_json::json!({"key_id": a.id(), "repo_id": "r"});
        assert!(open_config(&a, &config_bytes(&a, &cfg)).is_ok());
        let err = open_config(&b, &config_bytes(&a, &cfg)).unwrap_err();
        assert!(err.contains(a.id()), "{err}");
    }

    #[test]
    fn every_flipped_bit_of_the_config_is_caught() {
        let k = key();
        let cfg = serde_json::json!({"format": "f", "repo_id": "ab", "key_id": k.id(), "created_at_ms": 1});
        let good = config_bytes(&k, &cfg);
        assert!(open_config(&k, &good).is_ok());
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(open_config(&k, &bad).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(set_name(42), "sets/0000000042");
        assert_eq!(seq_of("sets/0000000042"), Some(42));
        assert_eq!(seq_of(&keys_name(7, 'b')), Some(7));
        assert_eq!(seq_of("sets/42"), None);
        let id = "ab".repeat(32);
        assert_eq!(id_of(&data_name(&id)), Some(id.as_str()));
    }
}
