//! Enrollment: an agent trades a one-time token for an identity.
//!
//! A token is `RS1-<id: 16 hex>-<secret: 64 hex>`. The appliance never stores the
//! secret: it keeps the token id and the MAC key derived from the secret with HKDF
//! ([`EnrollMacKey`]). Both sides authenticate their messages with that key, binding in
//! the SHA-256 of the TLS certificate the agent saw: a man in the middle (who lacks the
//! token, or presents another certificate) fails. The agent also signs with its new key
//! to prove it holds it. Tokens are single-use and short-lived, which bounds what a
//! stolen database copy could do with a stored MAC key.

use crate::context;
use crate::ids::AgentId;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub const TOKEN_PREFIX: &str = "RS1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnrollError {
    #[error("enrollment token is malformed (expected RS1-<16 hex>-<64 hex>)")]
    MalformedToken,
    #[error("enrollment message field {0} is malformed")]
    MalformedField(&'static str),
    #[error("enrollment MAC does not verify (wrong token, or the connection was intercepted)")]
    BadMac,
    #[error("proof of key possession does not verify")]
    BadPossession,
}

/// A parsed enrollment token. The secret is zeroized on drop.
pub struct EnrollToken {
    pub id: String,
    secret: Zeroizing<[u8; 32]>,
}

impl EnrollToken {
    pub fn new(id: [u8; 8], secret: [u8; 32]) -> Self {
        Self {
            id: hex::encode(id),
            secret: Zeroizing::new(secret),
        }
    }

    pub fn parse(s: &str) -> Result<Self, EnrollError> {
        let mut parts = s.trim().split('-');
        let (Some(prefix), Some(id), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(EnrollError::MalformedToken);
        };
        if prefix != TOKEN_PREFIX || id.len() != 16 || hex::decode(id).is_err() {
            return Err(EnrollError::MalformedToken);
        }
        let raw = Zeroizing::new(hex::decode(secret).map_err(|_| EnrollError::MalformedToken)?);
        let secret: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| EnrollError::MalformedToken)?;
        Ok(Self {
            id: id.to_ascii_lowercase(),
            secret: Zeroizing::new(secret),
        })
    }

    /// The text an operator copies to the agent. Shown once.
    pub fn reveal(&self) -> String {
        format!(
            "{TOKEN_PREFIX}-{}-{}",
            self.id,
            hex::encode(self.secret.as_ref())
        )
    }

    /// The MAC key both sides use; what the appliance stores instead of the secret.
    pub fn mac_key(&self) -> EnrollMacKey {
        let hk = Hkdf::<Sha256>::new(None, self.secret.as_ref());
        let mut k = Zeroizing::new([0u8; 32]);
        let _ = hk.expand(context::ENROLL_MAC_KEY_INFO, k.as_mut());
        EnrollMacKey {
            id: self.id.clone(),
            key: k,
        }
    }
}

/// A token's id with its derived MAC key. Zeroized on drop.
pub struct EnrollMacKey {
    pub id: String,
    key: Zeroizing<[u8; 32]>,
}

impl EnrollMacKey {
    pub fn from_bytes(id: String, key: [u8; 32]) -> Self {
        Self {
            id,
            key: Zeroizing::new(key),
        }
    }

    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.key.clone()
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        // HMAC accepts keys of any length; new_from_slice cannot fail here.
        let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_ref()) {
            Ok(m) => m,
            Err(_) => return [0u8; 32],
        };
        for p in parts {
            m.update(&(p.len() as u32).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub protocol_version: u8,
    pub token_id: String,
    /// Hex Ed25519 public key the agent generated.
    pub agent_public_key: String,
    pub hostname: String,
    /// Hex HMAC over the request fields and the certificate hash the agent saw.
    pub mac: String,
    /// Hex Ed25519 signature proving possession of the key.
    pub possession: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollResponse {
    pub agent_id: AgentId,
    pub room: String,
    /// Hex X25519 key envelopes are sealed to.
    pub envelope_public_key: String,
    /// Hex Ed25519 key of the appliance (for commands it signs later).
    pub appliance_signing_key: String,
    /// Hex SHA-256 of the ingest certificate, which the agent pins.
    pub ingest_cert_sha256: String,
    pub mac: String,
}

impl EnrollRequest {
    fn mac_input<'a>(
        token_id: &'a str,
        pk: &'a str,
        host: &'a str,
        cert: &'a [u8; 32],
    ) -> [&'a [u8]; 5] {
        [
            context::ENROLL_REQUEST_MAC,
            token_id.as_bytes(),
            pk.as_bytes(),
            host.as_bytes(),
            cert,
        ]
    }

    fn possession_message(token_id: &str, cert: &[u8; 32]) -> Vec<u8> {
        [context::ENROLL_POSSESSION, token_id.as_bytes(), cert].concat()
    }

    /// Builds a request for the certificate (by SHA-256) this connection presented.
    pub fn build(
        token: &EnrollMacKey,
        key: &SigningKey,
        hostname: &str,
        cert_sha256: &[u8; 32],
    ) -> Self {
        let pk = hex::encode(key.verifying_key().to_bytes());
        let mac = hex::encode(token.mac(&Self::mac_input(&token.id, &pk, hostname, cert_sha256)));
        let possession = hex::encode(
            key.sign(&Self::possession_message(&token.id, cert_sha256))
                .to_bytes(),
        );
        Self {
            protocol_version: crate::PROTOCOL_VERSION,
            token_id: token.id.clone(),
            agent_public_key: pk,
            hostname: hostname.to_owned(),
            mac,
            possession,
        }
    }

    /// Appliance side: checks MAC and possession; returns the agent's key.
    pub fn verify(
        &self,
        token: &EnrollMacKey,
        cert_sha256: &[u8; 32],
    ) -> Result<VerifyingKey, EnrollError> {
        let expected = token.mac(&Self::mac_input(
            &self.token_id,
            &self.agent_public_key,
            &self.hostname,
            cert_sha256,
        ));
        let got = hex::decode(&self.mac).map_err(|_| EnrollError::MalformedField("mac"))?;
        if !bool::from(expected.as_slice().ct_eq(got.as_slice())) {
            return Err(EnrollError::BadMac);
        }
        let pk = decode32(&self.agent_public_key, "agent_public_key")?;
        let key = VerifyingKey::from_bytes(&pk)
            .map_err(|_| EnrollError::MalformedField("agent_public_key"))?;
        let sig =
            hex::decode(&self.possession).map_err(|_| EnrollError::MalformedField("possession"))?;
        let sig: [u8; 64] = sig
            .as_slice()
            .try_into()
            .map_err(|_| EnrollError::MalformedField("possession"))?;
        key.verify_strict(
            &Self::possession_message(&self.token_id, cert_sha256),
            &Signature::from_bytes(&sig),
        )
        .map_err(|_| EnrollError::BadPossession)?;
        Ok(key)
    }
}

impl EnrollResponse {
    fn mac_input<'a>(&'a self, agent: &'a [u8; 16], request_mac: &'a str) -> [&'a [u8]; 7] {
        [
            context::ENROLL_RESPONSE_MAC,
            agent,
            self.room.as_bytes(),
            self.envelope_public_key.as_bytes(),
            self.appliance_signing_key.as_bytes(),
            self.ingest_cert_sha256.as_bytes(),
            request_mac.as_bytes(),
        ]
    }

    /// Appliance side: fills in the MAC, binding the response to the request.
    pub fn authenticate(mut self, token: &EnrollMacKey, request: &EnrollRequest) -> Self {
        let agent = *self.agent_id.as_bytes();
        self.mac = hex::encode(token.mac(&self.mac_input(&agent, &request.mac)));
        self
    }

    /// Agent side: checks the MAC, and that the pinned certificate is the one the
    /// connection presented.
    pub fn verify(
        &self,
        token: &EnrollMacKey,
        request: &EnrollRequest,
        cert_sha256: &[u8; 32],
    ) -> Result<(), EnrollError> {
        let agent = *self.agent_id.as_bytes();
        let expected = token.mac(&self.mac_input(&agent, &request.mac));
        let got = hex::decode(&self.mac).map_err(|_| EnrollError::MalformedField("mac"))?;
        if !bool::from(expected.as_slice().ct_eq(got.as_slice())) {
            return Err(EnrollError::BadMac);
        }
        if decode32(&self.ingest_cert_sha256, "ingest_cert_sha256")? != *cert_sha256 {
            return Err(EnrollError::BadMac);
        }
        decode32(&self.envelope_public_key, "envelope_public_key")?;
        decode32(&self.appliance_signing_key, "appliance_signing_key")?;
        Ok(())
    }
}

/// Decodes a 32-byte hex field.
pub fn decode32(s: &str, field: &'static str) -> Result<[u8; 32], EnrollError> {
    let raw = hex::decode(s).map_err(|_| EnrollError::MalformedField(field))?;
    raw.as_slice()
        .try_into()
        .map_err(|_| EnrollError::MalformedField(field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn token() -> EnrollMacKey {
        EnrollToken::new([1; 8], [2; 32]).mac_key()
    }

    #[test]
    fn token_text_round_trip_and_rejects() {
        let t = EnrollToken::new([1; 8], [2; 32]);
        let parsed = EnrollToken::parse(&t.reveal()).expect("parses");
        assert_eq!(parsed.id, t.id);
        assert_eq!(*parsed.mac_key().to_bytes(), *t.mac_key().to_bytes());
        assert_ne!(
            *EnrollToken::new([1; 8], [3; 32]).mac_key().to_bytes(),
            *t.mac_key().to_bytes()
        );
        for bad in [
            "",
            "RS1",
            "RS2-0101010101010101-00",
            "RS1-zz01010101010101-".to_owned().as_str(),
            "RS1-0101-aa",
        ] {
            assert_eq!(
                EnrollToken::parse(bad).err(),
                Some(EnrollError::MalformedToken),
                "{bad}"
            );
        }
    }

    #[test]
    fn request_and_response_bind_token_and_certificate() {
        let t = token();
        let key = SigningKey::generate(&mut OsRng);
        let cert = [9u8; 32];
        let req = EnrollRequest::build(&t, &key, "room-pc", &cert);
        assert_eq!(
            req.verify(&t, &cert).expect("valid").to_bytes(),
            key.verifying_key().to_bytes()
        );
        assert_eq!(
            req.verify(&t, &[8u8; 32]).err(),
            Some(EnrollError::BadMac),
            "other certificate"
        );
        assert_eq!(
            req.verify(&EnrollToken::new([1; 8], [5; 32]).mac_key(), &cert)
                .err(),
            Some(EnrollError::BadMac)
        );
        let mut swapped = req.clone();
        swapped.agent_public_key =
            hex::encode(SigningKey::generate(&mut OsRng).verifying_key().to_bytes());
        assert_eq!(swapped.verify(&t, &cert).err(), Some(EnrollError::BadMac));

        let resp = EnrollResponse {
            agent_id: AgentId::random(),
            room: "Board room".into(),
            envelope_public_key: hex::encode([4u8; 32]),
            appliance_signing_key: hex::encode([5u8; 32]),
            ingest_cert_sha256: hex::encode(cert),
            mac: String::new(),
        }
        .authenticate(&t, &req);
        resp.verify(&t, &req, &cert).expect("valid response");
        assert!(
            resp.verify(&t, &req, &[1u8; 32]).is_err(),
            "pinned cert must be the presented one"
        );
        let mut forged = resp.clone();
        forged.envelope_public_key = hex::encode([6u8; 32]);
        assert_eq!(
            forged.verify(&t, &req, &cert).err(),
            Some(EnrollError::BadMac)
        );
    }
}
