//! QUIC ingest: agents enroll and replicate envelopes here.
//!
//! One bidirectional stream per connection. Its first frame decides the conversation:
//! an `EnrollRequest` (answered, then closed) or a `Hello`, authenticated against
//! keying material exported from this TLS session, followed by envelopes (each answered
//! with an `Ack` after the store committed it, or a `Reject`) and heartbeats.
//! TLS 1.3 only, no 0-RTT. Before a peer has authenticated it must open its stream and
//! send its first frame within [`FIRST_FRAME_WITHIN`], or the connection is closed. A
//! revoked agent's open connection is closed at once. Every log line of a connection
//! is in its span (remote address, then agent id).

use crate::domain::views::Event;
use crate::domain::{
    Appliance, Commands, EventBus, Fleet, Ingest, IngestRejection, Published, Verified,
};
use crate::jobs::Stop;
use crate::keys::ApplianceKeys;
use quinn::{Connection, RecvStream, SendStream};
use roomscribe_protocol::frame::{self, Ack, Reject, RejectCode};
use roomscribe_protocol::hello::{Welcome, EXPORTER_LEN};
use roomscribe_protocol::{context, Frame, FrameDecoder, ALPN};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// An unauthenticated peer must open its stream and send its first frame within this.
pub const FIRST_FRAME_WITHIN: Duration = Duration::from_secs(10);

/// What the ingest connections call.
#[derive(Clone)]
pub struct Services {
    pub ingest: Arc<Ingest>,
    pub fleet: Arc<Fleet>,
    pub commands: Arc<Commands>,
    pub events: Arc<EventBus>,
}

impl From<&Appliance> for Services {
    fn from(a: &Appliance) -> Self {
        Self {
            ingest: a.ingest.clone(),
            fleet: a.fleet.clone(),
            commands: a.commands.clone(),
            events: a.events.clone(),
        }
    }
}

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

/// Accepts connections until the endpoint is closed or `stop`; connections end at
/// `stop` too.
pub async fn serve(endpoint: quinn::Endpoint, app: Services, mut stop: Stop) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i { Some(i) => i, None => return },
            _ = stop.requested() => return,
        };
        let (app, stop) = (app.clone(), stop.clone());
        let span = tracing::info_span!("quic", remote = %incoming.remote_address(), agent = tracing::field::Empty);
        tokio::spawn(
            async move {
                match tokio::time::timeout(FIRST_FRAME_WITHIN, incoming).await {
                    Ok(Ok(conn)) => {
                        if let Err(e) = handle(conn, app, stop).await {
                            tracing::debug!(error = %e, "ingest connection ended");
                        }
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "ingest handshake failed"),
                    Err(_) => tracing::debug!("ingest handshake did not finish in time"),
                }
            }
            .instrument(span),
        );
    }
}

type ConnResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn handle(conn: Connection, app: Services, stop: Stop) -> ConnResult {
    // Until the peer has proven who it is, only a small first frame is accepted, and
    // only soon: a peer that opens nothing, or sends nothing, is closed.
    let mut decoder = FrameDecoder::with_limit(frame::MAX_UNAUTHENTICATED_PAYLOAD);
    let opened = tokio::time::timeout(FIRST_FRAME_WITHIN, async {
        let (send, mut recv) = conn.accept_bi().await?;
        let first = read_frame(&mut recv, &mut decoder).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((send, recv, first))
    })
    .await;
    let (mut send, mut recv, first) = match opened {
        Ok(r) => r?,
        Err(_) => {
            conn.close(quinn::VarInt::from_u32(408), b"no hello in time");
            return Err("no first frame in time".into());
        }
    };
    match first {
        Some(Frame::EnrollRequest(req)) => {
            let (fleet, from) = (app.fleet.clone(), conn.remote_address().ip());
            let reply =
                match tokio::task::spawn_blocking(move || fleet.enroll(&req, Some(from))).await? {
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
            let (ingest, h) = (app.ingest.clone(), hello.clone());
            let authenticated =
                tokio::task::spawn_blocking(move || ingest.authenticate_hello(&h, &exporter))
                    .await?;
            match authenticated {
                Ok((who, last)) => {
                    tracing::Span::current()
                        .record("agent", tracing::field::display(who.agent_id()));
                    decoder.set_limit(frame::MAX_FRAME_PAYLOAD);
                    let welcome = Welcome {
                        last_envelope_seq: last,
                        appliance_time_ms: app.fleet.now_ms(),
                    };
                    send.write_all(&Frame::Welcome(welcome).encode()).await?;
                    let result =
                        session(&conn, &app, who, &mut send, &mut recv, &mut decoder, stop).await;
                    let fleet = app.fleet.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        fleet.agent_disconnected(&who.agent_id())
                    })
                    .await;
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
    app: &Services,
    who: Verified,
    send: &mut SendStream,
    recv: &mut RecvStream,
    decoder: &mut FrameDecoder,
    stop: Stop,
) -> ConnResult {
    let mut events = app.events.subscribe();
    let me = who.agent_id().to_string();
    let commands = app.commands.clone();
    let (link, mut rx) =
        tokio::task::spawn_blocking(move || commands.open_link(&who.agent_id())).await?;
    let mut talk = Conversation {
        conn,
        app,
        who,
        send,
        recv,
        decoder,
        me: &me,
    };
    let result = talk.run(&mut events, &mut rx, stop).await;
    app.commands.close_link(&who.agent_id(), link);
    result
}

/// One authenticated agent's conversation.
struct Conversation<'a> {
    conn: &'a Connection,
    app: &'a Services,
    who: Verified,
    send: &'a mut SendStream,
    recv: &'a mut RecvStream,
    decoder: &'a mut FrameDecoder,
    me: &'a str,
}

impl Conversation<'_> {
    async fn run(
        &mut self,
        events: &mut tokio::sync::broadcast::Receiver<Published>,
        commands: &mut tokio::sync::mpsc::UnboundedReceiver<
            roomscribe_protocol::command::SignedCommand,
        >,
        mut stop: Stop,
    ) -> ConnResult {
        let (conn, app, who, me) = (self.conn, self.app, self.who, self.me);
        let send = &mut *self.send;
        let recv = &mut *self.recv;
        let decoder = &mut *self.decoder;
        loop {
            tokio::select! {
                _ = stop.requested() => {
                    conn.close(quinn::VarInt::from_u32(0), b"appliance shutting down");
                    return Ok(());
                }
                Some(c) = commands.recv() => {
                    send.write_all(&Frame::Command(c).encode()).await?;
                }
                frame = read_frame(recv, decoder) => {
                    match frame? {
                        None => return Ok(()),
                        Some(Frame::Envelope(bytes)) => {
                            let ingest = app.ingest.clone();
                            let outcome = tokio::task::spawn_blocking(move || {
                                let seq = roomscribe_protocol::resync::acknowledged_number(&bytes);
                                (seq, ingest.accept_envelope(who, &bytes))
                            }).await?;
                            let reply = match outcome {
                                (Some(seq), Ok(status)) => Frame::Ack(Ack { envelope_seq: seq, status }),
                                (seq, Err(r)) => {
                                    tracing::warn!(code = ?r.code, envelope = ?seq, "envelope refused");
                                    reject(r, seq)
                                }
                                (None, Ok(_)) => reject(IngestRejection::new(RejectCode::Malformed, "no header"), None),
                            };
                            send.write_all(&reply.encode()).await?;
                        }
                        Some(Frame::Heartbeat(hb)) => {
                            let fleet = app.fleet.clone();
                            tokio::task::spawn_blocking(move || fleet.agent_heartbeat(&who.agent_id(), &hb.status)).await?;
                        }
                        Some(Frame::CommandAck(ack)) => {
                            let commands = app.commands.clone();
                            tokio::task::spawn_blocking(move || commands.answered(who, ack)).await?;
                        }
                        Some(Frame::Caption(bytes)) => {
                            // Never answered; a bad caption is only logged (it is display-only).
                            let ingest = app.ingest.clone();
                            if let Err(r) = tokio::task::spawn_blocking(move || ingest.accept_caption(who, &bytes)).await? {
                                tracing::warn!(code = ?r.code, "caption refused: {}", r.message);
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
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            let fleet = app.fleet.clone();
                            !tokio::task::spawn_blocking(move || fleet.agent_active(&who.agent_id())).await?
                        }
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
