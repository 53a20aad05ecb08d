//! QUIC ingest: agents enroll and replicate envelopes here.
//!
//! One bidirectional stream per connection. Its first frame decides the conversation:
//! an `EnrollRequest` (answered, then closed) or a `Hello`, authenticated against
//! keying material exported from this TLS session, followed by envelopes (each answered
//! with an `Ack` after the store committed it, or a `Reject`) and heartbeats.
//! TLS 1.3 only, no 0-RTT. A revoked agent's open connection is closed at once.

use crate::domain::views::Event;
use crate::domain::Published;
use crate::domain::{Appliance, IngestRejection};
use crate::keys::ApplianceKeys;
use quinn::{Connection, RecvStream, SendStream};
use roomscribe_protocol::frame::{self, Ack, Reject, RejectCode};
use roomscribe_protocol::hello::{Welcome, EXPORTER_LEN};
use roomscribe_protocol::{context, Frame, FrameDecoder, ALPN};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("QUIC configuration: {0}")]
    Quic(String),
    #[error("binding QUIC endpoint {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

pub fn endpoint(
    keys: &ApplianceKeys,
    addr: std::net::SocketAddr,
) -> Result<quinn::Endpoint, IngestError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(keys.ingest.chain.clone(), keys.ingest.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| IngestError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
        30_000,
    ))));
    transport.max_concurrent_uni_streams(0u8.into());
    transport.max_concurrent_bidi_streams(1u8.into());
    config.transport_config(Arc::new(transport));
    quinn::Endpoint::server(config, addr).map_err(|source| IngestError::Bind { addr, source })
}

/// Accepts connections until the endpoint is closed.
pub async fn serve(endpoint: quinn::Endpoint, app: Arc<Appliance>) {
    while let Some(incoming) = endpoint.accept().await {
        let app = app.clone();
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => {
                    let remote = conn.remote_address();
                    if let Err(e) = handle(conn, app).await {
                        tracing::debug!(%remote, error = %e, "ingest connection ended");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "ingest handshake failed"),
            }
        });
    }
}

type ConnResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn handle(conn: Connection, app: Arc<Appliance>) -> ConnResult {
    let (mut send, mut recv) = conn.accept_bi().await?;
    // Until the peer has proven who it is, only a small first frame is accepted.
    let mut decoder = FrameDecoder::with_limit(frame::MAX_UNAUTHENTICATED_PAYLOAD);
    let first = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut recv, &mut decoder))
        .await??;
    match first {
        Some(Frame::EnrollRequest(req)) => {
            let app2 = app.clone();
            let reply = match tokio::task::spawn_blocking(move || app2.enroll(&req)).await? {
                Ok(resp) => Frame::EnrollResponse(resp),
                Err(r) => reject(r, None),
            };
            send.write_all(&reply.encode()).await?;
            send.finish()?;
            // Let the agent read the reply before the connection goes.
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
            Ok(())
        }
        Some(Frame::Hello(hello)) => {
            let mut exporter = [0u8; EXPORTER_LEN];
            conn.export_keying_material(&mut exporter, context::HELLO_EXPORTER_LABEL, b"")
                .map_err(|_| "keying material export failed")?;
            match app.authenticate_hello(&hello, &exporter) {
                Ok((who, last)) => {
                    decoder.set_limit(frame::MAX_FRAME_PAYLOAD);
                    let welcome = Welcome {
                        last_envelope_seq: last,
                        appliance_time_ms: crate::domain::now_ms(),
                    };
                    send.write_all(&Frame::Welcome(welcome).encode()).await?;
                    let result =
                        session(&conn, &app, who, &mut send, &mut recv, &mut decoder).await;
                    app.agent_disconnected(&who.agent_id());
                    result
                }
                Err(r) => {
                    tracing::warn!(agent = %hello.agent_id, code = ?r.code, "ingest hello refused");
                    send.write_all(&reject(r, None).encode()).await?;
                    send.finish()?;
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
                    Ok(())
                }
            }
        }
        Some(_) => {
            let r = IngestRejection::new(
                RejectCode::NotAuthenticated,
                "expected hello or enrollment first",
            );
            send.write_all(&reject(r, None).encode()).await?;
            send.finish()?;
            Ok(())
        }
        None => Ok(()),
    }
}

async fn session(
    conn: &Connection,
    app: &Arc<Appliance>,
    who: crate::domain::Verified,
    send: &mut SendStream,
    recv: &mut RecvStream,
    decoder: &mut FrameDecoder,
) -> ConnResult {
    let mut events = app.subscribe();
    let me = who.agent_id().to_string();
    let (link, mut commands) = app.open_command_link(&who.agent_id());
    let result = conversation(
        conn,
        app,
        who,
        send,
        recv,
        decoder,
        &mut events,
        &mut commands,
        &me,
    )
    .await;
    app.close_command_link(&who.agent_id(), link);
    result
}

#[allow(clippy::too_many_arguments)]
async fn conversation(
    conn: &Connection,
    app: &Arc<Appliance>,
    who: crate::domain::Verified,
    send: &mut SendStream,
    recv: &mut RecvStream,
    decoder: &mut FrameDecoder,
    events: &mut tokio::sync::broadcast::Receiver<Published>,
    commands: &mut tokio::sync::mpsc::UnboundedReceiver<
        roomscribe_protocol::command::SignedCommand,
    >,
    me: &str,
) -> ConnResult {
    loop {
        tokio::select! {
            Some(c) = commands.recv() => {
                send.write_all(&Frame::Command(c).encode()).await?;
            }
            frame = read_frame(recv, decoder) => {
                match frame? {
                    None => return Ok(()),
                    Some(Frame::Envelope(bytes)) => {
                        let app = app.clone();
                        let outcome = tokio::task::spawn_blocking(move || {
                            let seq = roomscribe_protocol::EnvelopeHeader::parse(&bytes).ok().map(|h| h.envelope_seq);
                            (seq, app.accept_envelope(who, &bytes))
                        }).await?;
                        let reply = match outcome {
                            (Some(seq), Ok(status)) => Frame::Ack(Ack { envelope_seq: seq, status }),
                            (seq, Err(r)) => {
                                tracing::warn!(agent = %me, code = ?r.code, envelope = ?seq, "envelope refused");
                                reject(r, seq)
                            }
                            (None, Ok(_)) => reject(IngestRejection::new(RejectCode::Malformed, "no header"), None),
                        };
                        send.write_all(&reply.encode()).await?;
                    }
                    Some(Frame::Heartbeat(hb)) => app.agent_status(&who.agent_id(), &hb.status),
                    Some(Frame::CommandAck(ack)) => app.command_answered(who, ack),
                    Some(Frame::Caption(bytes)) => {
                        // Never answered; a bad caption is only logged (it is display-only).
                        if let Err(r) = app.accept_caption(who, &bytes) {
                            tracing::warn!(agent = %me, code = ?r.code, "caption refused: {}", r.message);
                        }
                    }
                    Some(_) => {
                        let r = IngestRejection::new(RejectCode::Malformed, "unexpected frame");
                        send.write_all(&reject(r, None).encode()).await?;
                    }
                }
            }
            ev = events.recv() => {
                let revoked = match ev.map(|p| p.event) {
                    Ok(Event::Agent { agent }) => agent.id == me && agent.revoked,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => !app.agent_active(&who.agent_id()),
                    Err(_) => false,
                    Ok(_) => false,
                };
                if revoked {
                    let r = IngestRejection::new(RejectCode::RevokedAgent, "agent revoked");
                    let _ = send.write_all(&reject(r, None).encode()).await;
                    conn.close(quinn::VarInt::from_u32(403), b"revoked");
                    return Ok(());
                }
            }
        }
    }
}

fn reject(r: IngestRejection, envelope_seq: Option<u64>) -> Frame {
    Frame::Reject(Reject {
        code: r.code,
        message: r.message,
        envelope_seq,
    })
}

/// Reads until one whole frame is decoded; `None` when the stream ends cleanly.
async fn read_frame(
    recv: &mut RecvStream,
    decoder: &mut FrameDecoder,
) -> Result<Option<Frame>, Box<dyn std::error::Error + Send + Sync>> {
    loop {
        if let Some(f) = decoder.next_frame()? {
            return Ok(Some(f));
        }
        let mut buf = vec![0u8; decoder.wanted().min(64 * 1024)];
        match recv.read(&mut buf).await? {
            Some(n) => decoder.push(&buf[..n]),
            None => return Ok(None),
        }
    }
}
