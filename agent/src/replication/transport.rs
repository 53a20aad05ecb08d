//! QUIC client side: certificate pinning, enrollment and the ingest session.
//!
//! The agent trusts exactly one certificate: the appliance's ingest certificate, whose
//! SHA-256 it pinned at enrollment. During enrollment nothing is pinned yet; the
//! verifier records what it saw and the enrollment MAC (keyed by the one-time token)
//! proves it was the appliance's. Either way the TLS 1.3 handshake signature is
//! verified, so the peer holds the certificate's key.

use crate::identity::Identity;
use ed25519_dalek::SigningKey;
use roomscribe_protocol::command::{CommandAck, SignedCommand};
use roomscribe_protocol::enroll::{EnrollRequest, EnrollResponse, EnrollToken};
use roomscribe_protocol::frame::{Ack, Reject, RejectCode};
use roomscribe_protocol::hello::{
    sign_hello, AgentStatus, Heartbeat, Hello, Welcome, EXPORTER_LEN,
};
use roomscribe_protocol::{context, Frame, FrameDecoder, ALPN};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SERVER_NAME: &str = "roomscribe-ingest";

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot resolve appliance address {0}")]
    Resolve(String),
    #[error("connecting to {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("connection lost: {0}")]
    Lost(String),
    #[error("the appliance refused: {code:?}: {message}")]
    Rejected { code: RejectCode, message: String },
    #[error("unexpected reply from the appliance: {0}")]
    Protocol(String),
    #[error("enrollment answer failed verification ({0}); the token may be wrong or the connection intercepted")]
    EnrollVerify(String),
    #[error("timed out waiting for the appliance")]
    Timeout,
}

impl TransportError {
    /// The appliance's certificate is not the one pinned at enrollment (the TLS error
    /// reaches us through QUIC as text, so it is recognised by the verifier's words).
    pub fn is_pin_mismatch(&self) -> bool {
        matches!(self, TransportError::Connect { message, .. } if message.contains(PIN_MISMATCH))
    }

    /// Errors after which retrying later can help.
    pub fn is_transient(&self) -> bool {
        match self {
            TransportError::Rejected { code, .. } => matches!(code, RejectCode::Internal),
            TransportError::Protocol(_) | TransportError::EnrollVerify(_) => false,
            _ => true,
        }
    }
}

const PIN_MISMATCH: &str = "appliance certificate does not match the pinned one";

#[derive(Debug)]
struct PinnedVerifier {
    pin: Option<[u8; 32]>,
    seen: Mutex<Option<[u8; 32]>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let hash: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if let Some(pin) = self.pin {
            if pin != hash {
                return Err(rustls::Error::General(PIN_MISMATCH.into()));
            }
        }
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(hash);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "TLS 1.2 is not used for ingest".into(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A QUIC connection with its one bidirectional stream.
pub struct Channel {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    decoder: FrameDecoder,
    /// SHA-256 of the certificate the appliance presented.
    pub cert_sha256: [u8; 32],
}

fn lost(e: impl std::fmt::Display) -> TransportError {
    TransportError::Lost(e.to_string())
}

impl Channel {
    pub async fn connect(addr: &str, pin: Option<[u8; 32]>) -> Result<Self, TransportError> {
        let target = tokio::net::lookup_host(addr)
            .await
            .map_err(|_| TransportError::Resolve(addr.to_owned()))?
            .next()
            .ok_or_else(|| TransportError::Resolve(addr.to_owned()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(PinnedVerifier {
            pin,
            seen: Mutex::new(None),
            provider: provider.clone(),
        });
        let cerr = |m: String| TransportError::Connect {
            addr: addr.to_owned(),
            message: m,
        };
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| cerr(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        tls.enable_early_data = false;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| cerr(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        // A vanished appliance (power cut, partition) is noticed within 10 s; keep-alives
        // every 3 s keep a healthy idle connection open.
        transport.keep_alive_interval(Some(Duration::from_secs(3)));
        transport.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
            10_000,
        ))));
        config.transport_config(Arc::new(transport));
        let bind: std::net::SocketAddr = if target.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        }
        .parse()
        .map_err(|_| cerr("bind".into()))?;
        let endpoint = quinn::Endpoint::client(bind).map_err(|e| cerr(e.to_string()))?;
        let connecting = endpoint
            .connect_with(config, target, SERVER_NAME)
            .map_err(|e| cerr(e.to_string()))?;
        let conn = tokio::time::timeout(Duration::from_secs(10), connecting)
            .await
            .map_err(|_| TransportError::Timeout)?
            .map_err(|e| match e {
                // Nothing answered within QUIC's idle timeout.
                quinn::ConnectionError::TimedOut => TransportError::Timeout,
                e => cerr(e.to_string()),
            })?;
        let cert_sha256 = verifier
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ok_or_else(|| cerr("no certificate".into()))?;
        let (send, recv) = conn.open_bi().await.map_err(lost)?;
        Ok(Self {
            _endpoint: endpoint,
            conn,
            send,
            recv,
            decoder: FrameDecoder::new(),
            cert_sha256,
        })
    }

    pub async fn send(&mut self, frame: &Frame) -> Result<(), TransportError> {
        self.send.write_all(&frame.encode()).await.map_err(lost)
    }

    /// Next frame, or an error if the stream ends first.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Frame, TransportError> {
        tokio::time::timeout(timeout, async {
            loop {
                if let Some(f) = self
                    .decoder
                    .next_frame()
                    .map_err(|e| TransportError::Protocol(e.to_string()))?
                {
                    return Ok(f);
                }
                let mut buf = vec![0u8; self.decoder.wanted().min(64 * 1024)];
                match self.recv.read(&mut buf).await.map_err(lost)? {
                    Some(n) => self.decoder.push(&buf[..n]),
                    None => {
                        return Err(TransportError::Lost(
                            "stream closed by the appliance".into(),
                        ))
                    }
                }
            }
        })
        .await
        .map_err(|_| TransportError::Timeout)?
    }

    pub fn close(&self) {
        self.conn.close(quinn::VarInt::from_u32(0), b"bye");
    }
}

/// Runs the enrollment exchange and returns the identity to store.
pub async fn enroll(
    addr: &str,
    token: &EnrollToken,
    key: &SigningKey,
    hostname: &str,
) -> Result<Identity, TransportError> {
    let mut ch = Channel::connect(addr, None).await?;
    let mac_key = token.mac_key();
    let req = EnrollRequest::build(&mac_key, key, hostname, &ch.cert_sha256);
    ch.send(&Frame::EnrollRequest(req.clone())).await?;
    let reply = ch.recv(Duration::from_secs(30)).await?;
    ch.close();
    let resp: EnrollResponse = match reply {
        Frame::EnrollResponse(r) => r,
        Frame::Reject(Reject { code, message, .. }) => {
            return Err(TransportError::Rejected { code, message })
        }
        other => return Err(TransportError::Protocol(format!("{other:?}"))),
    };
    resp.verify(&mac_key, &req, &ch.cert_sha256)
        .map_err(|e| TransportError::EnrollVerify(e.to_string()))?;
    Ok(Identity {
        agent_id: resp.agent_id,
        appliance: addr.to_owned(),
        room: resp.room,
        envelope_public_key: resp.envelope_public_key,
        appliance_signing_key: resp.appliance_signing_key,
        ingest_cert_sha256: resp.ingest_cert_sha256,
        enrolled_at_ms: crate::clock::now_ms(),
    })
}

/// An authenticated ingest session.
pub struct Session {
    ch: Channel,
    pub welcome: Welcome,
    /// Appliance clock minus agent clock, estimated from the hello round trip.
    pub clock_offset_ms: i64,
    /// Commands that arrived while an acknowledgement was awaited.
    commands: std::collections::VecDeque<SignedCommand>,
}

/// What the appliance said about one envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ack(Ack),
    Reject(Reject),
}

impl Session {
    /// Connects to the pinned appliance and authenticates with the agent's key.
    pub async fn open(
        identity: &Identity,
        key: &SigningKey,
        status: AgentStatus,
    ) -> Result<Self, TransportError> {
        let pin = identity
            .pin()
            .map_err(|e| TransportError::Protocol(e.to_string()))?;
        let mut ch = Channel::connect(&identity.appliance, Some(pin)).await?;
        let mut exporter = [0u8; EXPORTER_LEN];
        ch.conn
            .export_keying_material(&mut exporter, context::HELLO_EXPORTER_LABEL, b"")
            .map_err(|_| TransportError::Protocol("keying material export failed".into()))?;
        let hello = Hello {
            protocol_version: roomscribe_protocol::PROTOCOL_VERSION,
            agent_id: identity.agent_id,
            signature: sign_hello(key, &exporter, &identity.agent_id),
            status,
        };
        let sent_ms = crate::clock::now_ms();
        ch.send(&Frame::Hello(hello)).await?;
        match ch.recv(Duration::from_secs(15)).await? {
            Frame::Welcome(welcome) => {
                let midpoint = sent_ms + (crate::clock::now_ms() - sent_ms) / 2;
                let clock_offset_ms = welcome.appliance_time_ms - midpoint;
                Ok(Self {
                    ch,
                    welcome,
                    clock_offset_ms,
                    commands: Default::default(),
                })
            }
            Frame::Reject(Reject { code, message, .. }) => {
                Err(TransportError::Rejected { code, message })
            }
            other => Err(TransportError::Protocol(format!(
                "expected welcome, got {other:?}"
            ))),
        }
    }

    /// Sends one envelope and waits for the appliance's verdict. Commands arriving
    /// meanwhile are kept for [`next_command`](Session::next_command).
    pub async fn send_envelope(&mut self, bytes: Vec<u8>) -> Result<Reply, TransportError> {
        self.ch.send(&Frame::Envelope(bytes)).await?;
        let reply = loop {
            match self.ch.recv(Duration::from_secs(60)).await? {
                Frame::Command(c) => self.commands.push_back(c),
                other => break other,
            }
        };
        match reply {
            Frame::Ack(a) => Ok(Reply::Ack(a)),
            Frame::Reject(r) if r.code == RejectCode::RevokedAgent && r.envelope_seq.is_none() => {
                Err(TransportError::Rejected {
                    code: r.code,
                    message: r.message,
                })
            }
            Frame::Reject(r) => Ok(Reply::Reject(r)),
            other => Err(TransportError::Protocol(format!(
                "expected ack, got {other:?}"
            ))),
        }
    }

    /// A command kept while waiting for an acknowledgement, if any.
    pub fn pending_command(&mut self) -> Option<SignedCommand> {
        self.commands.pop_front()
    }

    /// Waits for the next command from the appliance (cancel-safe: a partly read frame
    /// stays in the decoder). Anything else the appliance sends unasked is an error.
    pub async fn next_command(&mut self) -> Result<SignedCommand, TransportError> {
        if let Some(c) = self.commands.pop_front() {
            return Ok(c);
        }
        match self.ch.recv(Duration::from_secs(3600)).await? {
            Frame::Command(c) => Ok(c),
            Frame::Reject(Reject { code, message, .. }) => {
                Err(TransportError::Rejected { code, message })
            }
            other => Err(TransportError::Protocol(format!(
                "unexpected frame from the appliance: {other:?}"
            ))),
        }
    }

    /// Answers a command.
    pub async fn command_ack(&mut self, ack: CommandAck) -> Result<(), TransportError> {
        self.ch.send(&Frame::CommandAck(ack)).await
    }

    /// Sends a sealed live caption; the appliance does not answer.
    pub async fn send_caption(&mut self, bytes: Vec<u8>) -> Result<(), TransportError> {
        self.ch.send(&Frame::Caption(bytes)).await
    }

    pub async fn heartbeat(&mut self, status: AgentStatus) -> Result<(), TransportError> {
        self.ch.send(&Frame::Heartbeat(Heartbeat { status })).await
    }

    /// A handle that resolves when the appliance closes the connection (e.g. on
    /// revocation): `handle.closed().await`.
    pub fn connection(&self) -> quinn::Connection {
        self.ch.conn.clone()
    }

    pub fn close(&self) {
        self.ch.close();
    }
}
