//! Rows of meeting content are sealed with their meeting's data key
//! ([`crate::keyring`]): `0x01 ‖ nonce (12) ‖ AES-256-GCM ciphertext ‖ tag`, with the
//! table and the row's full key as associated data, so a row cannot be moved to another
//! meeting, table or position and still open. Everything else (users, rooms, agents,
//! the audit log) holds no meeting content and stays as it was.

use super::{Result, StoreError};
use crate::keyring::{self, Keyring};
use zeroize::Zeroizing;

/// The first byte of a sealed row (a JSON record starts with `{`).
const SEALED_ROW: u8 = 1;

fn aad(table: &str, row: &str) -> Vec<u8> {
    [
        b"roomscribe/row/v1\0".as_slice(),
        table.as_bytes(),
        b"\0",
        row.as_bytes(),
    ]
    .concat()
}

/// `plain`, sealed with its meeting's `key` for `table` and `row`.
pub(super) fn seal(key: &aes_gcm::Aes256Gcm, table: &str, row: &str, plain: &[u8]) -> Vec<u8> {
    let mut out = vec![SEALED_ROW];
    out.extend_from_slice(&keyring::seal(key, &aad(table, row), plain));
    out
}

/// Whether a row [`seal`]ed for `table` and `row` opens with `key`.
pub(super) fn opens_with(key: &aes_gcm::Aes256Gcm, table: &str, row: &str, sealed: &[u8]) -> bool {
    match sealed.split_first() {
        Some((&SEALED_ROW, rest)) => keyring::open(key, &aad(table, row), rest).is_some(),
        _ => false,
    }
}

/// The plaintext of a row [`seal`]ed for `meeting`, `table` and `row`.
pub(super) fn open(
    keys: &Keyring,
    meeting: &str,
    table: &str,
    row: &str,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let key = keys.key(meeting)?.ok_or_else(|| StoreError::KeyMissing {
        meeting: meeting.to_owned(),
    })?;
    let unauthentic = || StoreError::Unauthentic {
        table: table.to_owned(),
        key: row.to_owned(),
    };
    match sealed.split_first() {
        Some((&SEALED_ROW, rest)) => keyring::open(&key, &aad(table, row), rest)
            // Sealed under the old key, by the state before a re-keying's commit.
            .or_else(|| {
                keys.retiring(meeting)
                    .and_then(|old| keyring::open(&old, &aad(table, row), rest))
            })
            .ok_or_else(unauthentic),
        _ => Err(unauthentic()),
    }
}

/// A sealed envelope's row: the meeting id (length-prefixed, so erasure finds a
/// meeting's envelopes without its key), then the sealed bytes.
pub(super) fn tag_meeting(meeting: &str, sealed: Vec<u8>) -> Vec<u8> {
    let id = meeting.as_bytes();
    let mut out = Vec::with_capacity(1 + id.len() + sealed.len());
    out.push(id.len().min(255) as u8);
    out.extend_from_slice(&id[..id.len().min(255)]);
    out.extend_from_slice(&sealed);
    out
}

/// The meeting a sealed envelope's row names, and the sealed bytes.
pub(super) fn untag_meeting(row: &[u8]) -> Option<(&str, &[u8])> {
    let (&n, rest) = row.split_first()?;
    let (id, sealed) = rest.split_at_checked(n as usize)?;
    Some((std::str::from_utf8(id).ok()?, sealed))
}
