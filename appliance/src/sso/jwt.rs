//! Verifying OpenID Connect ID tokens (compact JWS), without I/O: RS256 and ES256
//! only (`none` and shared-secret algorithms are refused), the key chosen by `kid`
//! from the provider's JWKS, then the claims an ID token must satisfy (issuer,
//! audience, authorized party, expiry, issue time, nonce).

use base64::Engine;
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Clock difference tolerated between the provider and the appliance.
pub const LEEWAY_SECS: i64 = 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a signed JWT")]
    Malformed,
    #[error("signature algorithm {0:?} is not accepted (RS256, ES256)")]
    Algorithm(String),
    #[error("no key in the provider's key set matches the token")]
    UnknownKey,
    #[error("the token's signature is not valid")]
    Signature,
    #[error("claim {0}: {1}")]
    Claim(&'static str, String),
}

/// One key of a JWKS (RFC 7517), as far as RS256 and ES256 need.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

fn b64(s: &str) -> Result<Vec<u8>, JwtError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed)
}

/// Checks the signature of `token` against `keys`; returns its claims.
pub fn verify_signature(token: &str, keys: &[Jwk]) -> Result<Map<String, Value>, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: Header = serde_json::from_slice(&b64(h)?).map_err(|_| JwtError::Malformed)?;
    let kty = match header.alg.as_str() {
        "RS256" => "RSA",
        "ES256" => "EC",
        other => return Err(JwtError::Algorithm(other.to_owned())),
    };
    let candidates: Vec<&Jwk> = keys
        .iter()
        .filter(|k| k.kty == kty && k.use_.as_deref().is_none_or(|u| u == "sig"))
        .filter(|k| header.kid.is_none() || k.kid == header.kid)
        .collect();
    if candidates.is_empty() {
        return Err(JwtError::UnknownKey);
    }
    let message = format!("{h}.{p}");
    let sig = b64(s)?;
    let ok = candidates
        .iter()
        .any(|k| verify_with(k, message.as_bytes(), &sig));
    if !ok {
        return Err(JwtError::Signature);
    }
    serde_json::from_slice(&b64(p)?).map_err(|_| JwtError::Malformed)
}

fn verify_with(k: &Jwk, message: &[u8], sig: &[u8]) -> bool {
    match k.kty.as_str() {
        "RSA" => {
            let (Some(n), Some(e)) = (k.n.as_deref(), k.e.as_deref()) else {
                return false;
            };
            let (Ok(n), Ok(e)) = (b64(n), b64(e)) else {
                return false;
            };
            signature::RsaPublicKeyComponents { n: &n, e: &e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok()
        }
        "EC" if k.crv.as_deref() == Some("P-256") => {
            let (Some(x), Some(y)) = (k.x.as_deref(), k.y.as_deref()) else {
                return false;
            };
            let (Ok(x), Ok(y)) = (b64(x), b64(y)) else {
                return false;
            };
            let point = [&[4u8][..], &x, &y].concat();
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, sig)
                .is_ok()
        }
        _ => false,
    }
}

/// The checks OpenID Connect Core 3.1.3.7 asks of an ID token's claims.
pub fn check_id_token(
    claims: &Map<String, Value>,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now_secs: i64,
) -> Result<(), JwtError> {
    let claim = |name: &'static str, why: &str| JwtError::Claim(name, why.to_owned());
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(claim("iss", "not the configured issuer"));
    }
    let aud: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !aud.contains(&client_id) {
        return Err(claim("aud", "not issued for this appliance"));
    }
    if aud.len() > 1 && claims.get("azp").and_then(Value::as_str) != Some(client_id) {
        return Err(claim(
            "azp",
            "several audiences and this appliance is not the authorized party",
        ));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| claim("exp", "missing"))?;
    if exp + LEEWAY_SECS < now_secs {
        return Err(claim("exp", "the token has expired"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| claim("iat", "missing"))?;
    if iat - LEEWAY_SECS > now_secs {
        return Err(claim("iat", "issued in the future"));
    }
    let n = claims
        .get("nonce")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let same: bool = subtle::ConstantTimeEq::ct_eq(n.as_bytes(), nonce.as_bytes()).into();
    if !same {
        return Err(claim("nonce", "does not match this sign-in"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    fn enc(v: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    }

    /// A P-256 key pair and its JWK.
    fn key(kid: &str) -> (EcdsaKeyPair, Jwk) {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("gen");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("pair");
        let point = pair.public_key().as_ref().to_vec();
        let jwk = Jwk {
            kty: "EC".into(),
            kid: Some(kid.into()),
            use_: Some("sig".into()),
            n: None,
            e: None,
            crv: Some("P-256".into()),
            x: Some(enc(&point[1..33])),
            y: Some(enc(&point[33..])),
        };
        (pair, jwk)
    }

    fn sign(pair: &EcdsaKeyPair, header: Value, claims: Value) -> String {
        let h = enc(header.to_string().as_bytes());
        let p = enc(claims.to_string().as_bytes());
        let sig = pair
            .sign(&SystemRandom::new(), format!("{h}.{p}").as_bytes())
            .expect("sign");
        format!("{h}.{p}.{}", enc(sig.as_ref()))
    }

    fn claims(now: i64) -> Value {
        json!({"iss": "https://idp", "aud": "rs", "exp": now + 300, "iat": now, "nonce": "n1", "sub": "olga"})
    }

    #[test]
    fn a_good_token_verifies_and_its_claims_are_checked() {
        let (pair, jwk) = key("k1");
        let now = 1_700_000_000;
        let t = sign(&pair, json!({"alg": "ES256", "kid": "k1"}), claims(now));
        let c = verify_signature(&t, std::slice::from_ref(&jwk)).expect("valid");
        check_id_token(&c, "https://idp", "rs", "n1", now).expect("claims");
        for (iss, aud, nonce, at, what) in [
            ("https://other", "rs", "n1", now, "iss"),
            ("https://idp", "someone-else", "n1", now, "aud"),
            ("https://idp", "rs", "n2", now, "nonce"),
            ("https://idp", "rs", "n1", now + 3600, "exp"),
            ("https://idp", "rs", "n1", now - 3600, "iat"),
        ] {
            assert!(
                matches!(check_id_token(&c, iss, aud, nonce, at), Err(JwtError::Claim(w, _)) if w == what),
                "{what}"
            );
        }
    }

    #[test]
    fn forged_altered_and_unsigned_tokens_are_refused() {
        let (pair, jwk) = key("k1");
        let (other, other_jwk) = key("k2");
        let now = 1_700_000_000;
        let good = sign(&pair, json!({"alg": "ES256", "kid": "k1"}), claims(now));
        // Payload swapped for another (the signature no longer fits).
        let mut parts: Vec<&str> = good.split('.').collect();
        let evil = enc(json!({"iss": "https://idp", "aud": "rs", "exp": now + 300, "iat": now, "nonce": "n1", "sub": "admin"}).to_string().as_bytes());
        parts[1] = &evil;
        assert_eq!(
            verify_signature(&parts.join("."), std::slice::from_ref(&jwk)),
            Err(JwtError::Signature)
        );
        // Signed by a key the provider does not publish under that kid.
        let forged = sign(&other, json!({"alg": "ES256", "kid": "k1"}), claims(now));
        assert_eq!(
            verify_signature(&forged, &[jwk.clone(), other_jwk]),
            Err(JwtError::Signature)
        );
        let unknown = sign(&other, json!({"alg": "ES256", "kid": "k9"}), claims(now));
        assert_eq!(
            verify_signature(&unknown, std::slice::from_ref(&jwk)),
            Err(JwtError::UnknownKey)
        );
        // alg none and shared-secret algorithms are never accepted.
        for alg in ["none", "HS256", "RS512"] {
            let h = enc(json!({"alg": alg}).to_string().as_bytes());
            let p = enc(claims(now).to_string().as_bytes());
            assert_eq!(
                verify_signature(&format!("{h}.{p}."), std::slice::from_ref(&jwk)),
                Err(JwtError::Algorithm(alg.into()))
            );
        }
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(
                verify_signature(junk, std::slice::from_ref(&jwk)).is_err(),
                "{junk}"
            );
        }
    }
}
