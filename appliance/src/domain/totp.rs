//! Time-based one-time passwords (RFC 6238) as authenticator apps make them:
//! HMAC-SHA-1 over 30-second steps, 6 digits, a 160-bit secret shown as base32.
//! Pure: the time is passed in. A code is accepted for the current step and one step
//! either side (clock drift), and each step at most once per user (no replay).

use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub const STEP_SECS: i64 = 30;
pub const DIGITS: u32 = 6;
pub const SECRET_LEN: usize = 20;

/// A fresh random secret.
pub fn generate() -> Zeroizing<Vec<u8>> {
    let mut s = Zeroizing::new(vec![0u8; SECRET_LEN]);
    OsRng.fill_bytes(&mut s);
    s
}

/// The code for time step `step` (RFC 4226 dynamic truncation).
pub fn code_at(secret: &[u8], step: u64, digits: u32) -> u32 {
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret) else {
        return u32::MAX; // HMAC takes keys of any length: unreachable
    };
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[h.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    bin % 10u32.pow(digits)
}

pub fn step_of(unix_secs: i64) -> u64 {
    (unix_secs.max(0) / STEP_SECS) as u64
}

/// Checks `code` at `unix_secs`: the step it matched, if it matched one within ±1 step
/// that is later than `last_used` (each code works once).
pub fn verify(secret: &[u8], code: &str, unix_secs: i64, last_used: Option<u64>) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix_secs);
    let mut matched = None;
    // Every candidate is compared (constant time), whichever matches.
    for step in [now.saturating_sub(1), now, now + 1] {
        let expected = format!(
            "{:0width$}",
            code_at(secret, step, DIGITS),
            width = DIGITS as usize
        );
        let same: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        if same && last_used.is_none_or(|l| step > l) {
            matched = Some(step);
        }
    }
    matched
}

/// RFC 4648 base32 without padding (what authenticator apps read).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for b in bytes {
        buf = (buf << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The `otpauth://` URI an authenticator app scans (as a QR code) or accepts pasted.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = crate::urlencode::component;
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors() {
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(code_at(secret, step_of(t), 8), code, "T={t}");
        }
    }

    #[test]
    fn window_replay_and_junk() {
        let secret = b"12345678901234567890";
        let t = 1_111_111_111;
        let code = |step| format!("{:06}", code_at(secret, step, 6));
        let now = step_of(t);
        assert_eq!(verify(secret, &code(now), t, None), Some(now));
        assert_eq!(verify(secret, &code(now - 1), t, None), Some(now - 1));
        assert_eq!(verify(secret, &code(now + 1), t, None), Some(now + 1));
        assert_eq!(
            verify(secret, &code(now + 2), t, None),
            None,
            "too far ahead"
        );
        assert_eq!(verify(secret, &code(now), t, Some(now)), None, "used once");
        assert_eq!(verify(secret, &code(now), t, Some(now - 1)), Some(now));
        for junk in ["", "12345", "1234567", "abcdef", "12 456"] {
            assert_eq!(verify(secret, junk, t, None), None, "{junk:?}");
        }
        assert_ne!(
            verify(b"another secret......", &code(now), t, None),
            Some(now)
        );
    }

    #[test]
    fn base32_and_uri() {
        // RFC 4648 test vectors (padding dropped).
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(plain.as_bytes()), enc);
        }
        let uri = otpauth_uri("Roomscribe", "ann@ward 4", b"12345678901234567890");
        assert!(uri.starts_with(
            "otpauth://totp/Roomscribe:ann%40ward%204?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"
        ));
    }
}
