//! Local meeting control for a live agent: start, stop, pause and resume a meeting.
//!
//! A running `roomscribe-agent run` (live capture) listens on `<state_dir>/control.sock`
//! (a Unix socket, 0600 inside the 0700 state directory, so only the agent's own user
//! can use it); `roomscribe-agent meeting start|stop|pause|resume` sends one line and
//! prints the one-line answer. A room button or a kiosk script uses the same command.
//!
//! Requests are one line of text: `start [TITLE]`, `stop`, `pause`, `resume`,
//! `mark action_item|highlight`, `consent given|withdrawn`, `status`. The decisions are made by [`Control`], which
//! the pipeline polls between audio chunks; voice commands, appliance commands and the
//! room schedule go through the same [`Control::handle`], each with its
//! [`EventSource`], and every change becomes a meeting event. `handle` answers with a
//! typed [`Answer`] or [`Refusal`]; only the socket turns them into its one line
//! (`ok <answer>` or `error <refusal>`), and [`send`] turns that line back.

use crate::meeting::consent::ConsentPolicy;
use roomscribe_protocol::command::ConsentRule;
use roomscribe_protocol::MeetingId;
pub use roomscribe_protocol::{EventKind, EventSource};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Start {
        title: Option<String>,
    },
    Stop,
    Pause,
    Resume,
    /// Marks this moment: `ActionItem` or `Highlight` only.
    Mark(EventKind),
    /// Everyone present consented (`true`), or someone withdrew (`false`).
    Consent(bool),
    Status,
}

/// An event waiting to be sealed into the meeting by the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    pub kind: EventKind,
    pub source: EventSource,
    /// Seconds from the meeting start when known (a voice command's last word);
    /// otherwise the pipeline uses how far the meeting has got.
    pub at: Option<f64>,
}

impl Request {
    pub fn parse(line: &str) -> Result<Self, String> {
        let line = line.trim();
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        let no_args = |r: Request| {
            if rest.is_empty() {
                Ok(r)
            } else {
                Err(format!("`{verb}` takes no arguments"))
            }
        };
        match verb {
            "start" => {
                if rest.chars().count() > 200 || rest.chars().any(char::is_control) {
                    return Err("title: at most 200 characters, no control characters".into());
                }
                Ok(Request::Start {
                    title: (!rest.is_empty()).then(|| rest.to_owned()),
                })
            }
            "stop" => no_args(Request::Stop),
            "pause" => no_args(Request::Pause),
            "resume" => no_args(Request::Resume),
            "status" => no_args(Request::Status),
            "consent" => match rest {
                "given" => Ok(Request::Consent(true)),
                "withdrawn" => Ok(Request::Consent(false)),
                other => Err(format!(
                    "consent {other:?}? expected `consent given` or `consent withdrawn`"
                )),
            },
            "mark" => match rest {
                "action_item" => Ok(Request::Mark(EventKind::ActionItem)),
                "highlight" => Ok(Request::Mark(EventKind::Highlight)),
                other => Err(format!(
                    "cannot mark {other:?}; expected action_item or highlight"
                )),
            },
            other => Err(format!(
                "unknown request {other:?}; expected start [TITLE], stop, pause, resume, mark action_item|highlight, consent given|withdrawn or status"
            )),
        }
    }

    pub fn to_line(&self) -> String {
        match self {
            Request::Start { title: Some(t) } => format!("start {t}\n"),
            Request::Start { title: None } => "start\n".into(),
            Request::Stop => "stop\n".into(),
            Request::Pause => "pause\n".into(),
            Request::Resume => "resume\n".into(),
            Request::Mark(kind) => format!("mark {}\n", kind.as_str()),
            Request::Consent(true) => "consent given\n".into(),
            Request::Consent(false) => "consent withdrawn\n".into(),
            Request::Status => "status\n".into(),
        }
    }
}

pub use crate::replication::health::MeetingState;

/// What a request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Starting,
    /// The current meeting is ending; the next starts right after it.
    StartingAfterCurrent,
    Stopping,
    Paused,
    Recording,
    Marked(EventKind),
    State(MeetingState),
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Starting => f.write_str("starting a meeting"),
            Answer::StartingAfterCurrent => {
                f.write_str("starting a meeting when the current one has ended")
            }
            Answer::Stopping => f.write_str("stopping the meeting"),
            Answer::Paused => f.write_str("paused"),
            Answer::Recording => f.write_str("recording"),
            Answer::Marked(kind) => write!(f, "marked {}", kind.as_str()),
            Answer::State(state) => write!(f, "{state}"),
        }
    }
}

/// Why a request was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the agent is shutting down")]
    ShuttingDown,
    #[error("a meeting is already being recorded")]
    AlreadyRecording,
    #[error("no meeting is being recorded")]
    NotRecording,
    #[error("no meeting is being recorded to mark {}", .0.as_str())]
    NothingToMark(EventKind),
    #[error("cannot mark {}", .0.as_str())]
    CannotMark(EventKind),
    /// The team requires everyone's consent, and it has not been given.
    #[error("waiting for everyone's consent: nothing is transcribed until it is given")]
    AwaitingConsent,
    /// The line was not a request (only from the socket).
    #[error("{0}")]
    BadRequest(String),
}

/// The socket's one-line form of a result.
fn to_wire(result: &Result<Answer, Refusal>) -> String {
    match result {
        Ok(a) => format!("ok {a}\n"),
        Err(r) => format!("error {r}\n"),
    }
}

/// What a live agent is doing, shared by the control socket and the pipeline.
#[derive(Debug, Default)]
pub struct Control {
    /// A meeting is being recorded (possibly paused).
    active: AtomicBool,
    /// Set to end the current meeting (the pipeline checks it between chunks).
    pub meeting_stop: AtomicBool,
    /// While set, audio is read but not transcribed.
    pub paused: AtomicBool,
    /// The consent rule requires everyone's consent, and it has not been given (or
    /// was withdrawn): audio is read but not transcribed, whatever `paused` says.
    awaiting_consent: AtomicBool,
    /// The room's consent rule, applied when a meeting begins.
    policy: Mutex<ConsentPolicy>,
    /// The meeting being recorded.
    meeting: Mutex<Option<MeetingId>>,
    /// The agent is shutting down (Ctrl-C, SIGTERM): no new meeting starts.
    pub exit: AtomicBool,
    /// A start was requested, with this title, by this source.
    start: Mutex<Option<(Option<String>, EventSource)>>,
    /// Events for the pipeline to seal into the current meeting.
    events: Mutex<Vec<PendingEvent>>,
}

impl Control {
    pub fn state(&self) -> MeetingState {
        match (
            self.active.load(Ordering::Relaxed),
            self.awaiting_consent.load(Ordering::Relaxed),
            self.paused.load(Ordering::Relaxed),
        ) {
            (false, _, _) => MeetingState::Idle,
            (true, true, _) => MeetingState::AwaitingConsent,
            (true, false, false) => MeetingState::Recording,
            (true, false, true) => MeetingState::Paused,
        }
    }

    /// Whether audio is let pass untranscribed now (paused, or awaiting consent).
    pub fn unheard(&self) -> bool {
        self.paused.load(Ordering::Relaxed) || self.awaiting_consent.load(Ordering::Relaxed)
    }

    pub fn set_policy(&self, policy: ConsentPolicy) {
        *lock(&self.policy) = policy;
    }

    pub fn policy(&self) -> ConsentPolicy {
        lock(&self.policy).clone()
    }

    /// The meeting being recorded, if any.
    pub fn meeting(&self) -> Option<MeetingId> {
        if self.active.load(Ordering::Relaxed) {
            *lock(&self.meeting)
        } else {
            None
        }
    }

    /// A meeting begins, started by `source`: its start event, then what the consent
    /// rule asks (a `notice` event, or a `consent_pending` event and the gate closed
    /// before the first chunk of audio is read).
    pub fn begin(&self, meeting: MeetingId, source: EventSource) {
        let rule = lock(&self.policy).rule;
        *lock(&self.meeting) = Some(meeting);
        self.set_active(true);
        self.push_event(PendingEvent {
            kind: EventKind::Start,
            source,
            at: Some(0.0),
        });
        let policy_event = |kind| {
            self.push_event(PendingEvent {
                kind,
                source: EventSource::Policy,
                at: Some(0.0),
            })
        };
        match rule {
            ConsentRule::RecordWithoutConsent => {}
            ConsentRule::RequireAnnouncement => policy_event(EventKind::Notice),
            ConsentRule::RequireAll => {
                self.awaiting_consent.store(true, Ordering::Relaxed);
                policy_event(EventKind::ConsentPending);
            }
        }
    }

    /// Applies a request from `source`.
    pub fn handle(&self, req: &Request, source: EventSource) -> Result<Answer, Refusal> {
        self.handle_at(req, source, None)
    }

    /// [`handle`](Control::handle) for a request heard at `at` seconds into the meeting.
    pub fn handle_at(
        &self,
        req: &Request,
        source: EventSource,
        at: Option<f64>,
    ) -> Result<Answer, Refusal> {
        let active = self.active.load(Ordering::Relaxed);
        let event = |kind| self.push_event(PendingEvent { kind, source, at });
        match req {
            Request::Start { title } if !active => {
                if self.exit.load(Ordering::Relaxed) {
                    return Err(Refusal::ShuttingDown);
                }
                *lock(&self.start) = Some((title.clone(), source));
                Ok(Answer::Starting)
            }
            // The current meeting is ending: start the next one right after it.
            Request::Start { title } if self.meeting_stop.load(Ordering::Relaxed) => {
                *lock(&self.start) = Some((title.clone(), source));
                Ok(Answer::StartingAfterCurrent)
            }
            Request::Start { .. } => Err(Refusal::AlreadyRecording),
            Request::Stop if active => {
                if !self.meeting_stop.swap(true, Ordering::Relaxed) {
                    event(EventKind::Stop);
                }
                Ok(Answer::Stopping)
            }
            Request::Pause if active => {
                if !self.paused.swap(true, Ordering::Relaxed) {
                    event(EventKind::Pause);
                }
                Ok(Answer::Paused)
            }
            Request::Resume if active && self.awaiting_consent.load(Ordering::Relaxed) => {
                Err(Refusal::AwaitingConsent)
            }
            Request::Resume if active => {
                if self.paused.swap(false, Ordering::Relaxed) {
                    event(EventKind::Resume);
                }
                Ok(Answer::Recording)
            }
            Request::Mark(kind @ (EventKind::ActionItem | EventKind::Highlight)) if active => {
                event(*kind);
                Ok(Answer::Marked(*kind))
            }
            Request::Mark(kind @ (EventKind::ActionItem | EventKind::Highlight)) => {
                Err(Refusal::NothingToMark(*kind))
            }
            Request::Mark(kind) => Err(Refusal::CannotMark(*kind)),
            Request::Consent(true) if active => {
                if self.awaiting_consent.swap(false, Ordering::Relaxed) {
                    event(EventKind::ConsentGiven);
                }
                Ok(Answer::State(self.state()))
            }
            // A withdrawal closes the gate whatever the rule: someone has said no.
            Request::Consent(false) if active => {
                if !self.awaiting_consent.swap(true, Ordering::Relaxed) {
                    event(EventKind::ConsentPending);
                }
                Ok(Answer::State(self.state()))
            }
            Request::Stop | Request::Pause | Request::Resume | Request::Consent(_) => {
                Err(Refusal::NotRecording)
            }
            Request::Status => Ok(Answer::State(self.state())),
        }
    }

    /// Adds an event for the pipeline to seal (e.g. the start of a meeting).
    pub fn push_event(&self, e: PendingEvent) {
        lock(&self.events).push(e);
    }

    /// Takes the events waiting to be sealed, oldest first.
    pub fn take_events(&self) -> Vec<PendingEvent> {
        std::mem::take(&mut *lock(&self.events))
    }

    /// Takes a pending start request (the pipeline thread polls this while idle).
    pub fn take_start(&self) -> Option<(Option<String>, EventSource)> {
        lock(&self.start).take()
    }

    pub fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::Relaxed);
        if !active {
            lock(&self.events).clear();
            self.paused.store(false, Ordering::Relaxed);
            self.awaiting_consent.store(false, Ordering::Relaxed);
            self.meeting_stop.store(false, Ordering::Relaxed);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("control.sock")
}

/// Serves the control socket until the task is aborted.
pub async fn serve(
    path: PathBuf,
    control: std::sync::Arc<Control>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // A full file table: wait instead of spinning on the error.
                    tracing::warn!(error = %e, "control socket: accept failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            };
            let control = control.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
                let (r, mut w) = stream.into_split();
                let mut line = String::new();
                let mut r = BufReader::new(r.take(1024));
                if r.read_line(&mut line).await.is_err() {
                    return;
                }
                let result = match Request::parse(&line) {
                    Ok(req) => {
                        tracing::info!(request = ?req, "meeting control");
                        control.handle(&req, EventSource::Local)
                    }
                    Err(e) => Err(Refusal::BadRequest(e)),
                };
                let _ = w.write_all(to_wire(&result).as_bytes()).await;
            });
        }
    }))
}

/// Sends one request to the agent running with `state_dir`; returns its answer, or
/// its refusal as `Err` (both as the agent worded them).
pub async fn send(state_dir: &Path, req: &Request) -> anyhow::Result<Result<String, String>> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let path = socket_path(state_dir);
    let stream = tokio::net::UnixStream::connect(&path).await.map_err(|e| {
        anyhow::anyhow!(
            "no running live agent answers on {} ({e}); start `roomscribe-agent run` first",
            path.display()
        )
    })?;
    let (r, mut w) = stream.into_split();
    w.write_all(req.to_line().as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).await?;
    let line = line.trim();
    match (line.strip_prefix("ok "), line.strip_prefix("error ")) {
        (Some(answer), _) => Ok(Ok(answer.to_owned())),
        (_, Some(refusal)) => Ok(Err(refusal.to_owned())),
        _ => anyhow::bail!("the agent answered {line:?}, which is no answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ones_are_named() {
        assert_eq!(
            Request::parse("start Ward round\n"),
            Ok(Request::Start {
                title: Some("Ward round".into())
            })
        );
        assert_eq!(Request::parse("stop"), Ok(Request::Stop));
        assert!(Request::parse("stop now").is_err());
        assert!(Request::parse("launch").unwrap_err().contains("launch"));
        assert!(Request::parse("start a\u{7}b").is_err());
        assert!(Request::parse("mark stop").unwrap_err().contains("stop"));
        for r in [
            Request::Start { title: None },
            Request::Start {
                title: Some("x y".into()),
            },
            Request::Pause,
            Request::Resume,
            Request::Mark(EventKind::Highlight),
            Request::Mark(EventKind::ActionItem),
            Request::Consent(true),
            Request::Consent(false),
            Request::Status,
        ] {
            assert_eq!(Request::parse(&r.to_line()), Ok(r));
        }
    }

    #[test]
    fn state_machine() {
        let c = Control::default();
        let local = EventSource::Local;
        assert_eq!(c.handle(&Request::Stop, local), Err(Refusal::NotRecording));
        assert_eq!(
            c.handle(&Request::Mark(EventKind::Highlight), local),
            Err(Refusal::NothingToMark(EventKind::Highlight))
        );
        assert_eq!(
            c.handle(&Request::Start { title: None }, EventSource::Voice),
            Ok(Answer::Starting)
        );
        assert_eq!(c.take_start(), Some((None, EventSource::Voice)));
        c.set_active(true);
        assert_eq!(
            c.handle(&Request::Start { title: None }, local),
            Err(Refusal::AlreadyRecording)
        );
        assert_eq!(c.handle(&Request::Pause, local), Ok(Answer::Paused));
        assert_eq!(c.handle(&Request::Pause, local), Ok(Answer::Paused));
        assert_eq!(c.state(), MeetingState::Paused);
        assert_eq!(
            c.handle(&Request::Status, local),
            Ok(Answer::State(MeetingState::Paused))
        );
        assert_eq!(
            c.handle_at(&Request::Resume, EventSource::Voice, Some(12.5)),
            Ok(Answer::Recording)
        );
        assert_eq!(
            c.handle(&Request::Mark(EventKind::ActionItem), local),
            Ok(Answer::Marked(EventKind::ActionItem))
        );
        assert_eq!(
            c.handle(&Request::Mark(EventKind::Stop), local),
            Err(Refusal::CannotMark(EventKind::Stop))
        );
        assert_eq!(c.handle(&Request::Stop, local), Ok(Answer::Stopping));
        assert!(c.meeting_stop.load(Ordering::Relaxed));
        let kinds: Vec<_> = c
            .take_events()
            .iter()
            .map(|e| (e.kind, e.source, e.at))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (EventKind::Pause, local, None),
                (EventKind::Resume, EventSource::Voice, Some(12.5)),
                (EventKind::ActionItem, local, None),
                (EventKind::Stop, local, None),
            ],
            "one event per change: a second pause is not another event"
        );
        assert!(c.take_events().is_empty());
        // Asked to start while the last meeting is still closing: queued, not refused.
        assert_eq!(
            c.handle(&Request::Start { title: None }, local),
            Ok(Answer::StartingAfterCurrent)
        );
        c.set_active(false);
        assert_eq!(c.take_start(), Some((None, local)));
        assert_eq!(c.state(), MeetingState::Idle);
        assert!(!c.meeting_stop.load(Ordering::Relaxed));
        c.exit.store(true, Ordering::Relaxed);
        assert_eq!(
            c.handle(&Request::Start { title: None }, local),
            Err(Refusal::ShuttingDown)
        );
    }

    #[test]
    fn require_all_gates_the_meeting_until_consent_and_a_withdrawal_closes_it_again() {
        let c = Control::default();
        let local = EventSource::Local;
        assert_eq!(
            c.handle(&Request::Consent(true), local),
            Err(Refusal::NotRecording)
        );
        c.set_policy(ConsentPolicy {
            version: 1,
            rule: ConsentRule::RequireAll,
            notice: String::new(),
        });
        let first = MeetingId::random();
        c.begin(first, EventSource::Schedule);
        assert_eq!(c.meeting(), Some(first));
        assert_eq!(c.state(), MeetingState::AwaitingConsent);
        assert!(c.unheard(), "nothing is transcribed before consent");
        assert_eq!(
            c.handle(&Request::Resume, local),
            Err(Refusal::AwaitingConsent),
            "resume cannot get round the rule"
        );
        assert!(c.unheard());
        assert_eq!(
            c.handle(&Request::Consent(true), EventSource::Appliance),
            Ok(Answer::State(MeetingState::Recording))
        );
        assert!(!c.unheard());
        // Given twice: one event.
        let _ = c.handle(&Request::Consent(true), EventSource::Appliance);
        assert_eq!(
            c.handle(&Request::Consent(false), local),
            Ok(Answer::State(MeetingState::AwaitingConsent))
        );
        assert!(c.unheard());
        let kinds: Vec<_> = c.take_events().iter().map(|e| (e.kind, e.source)).collect();
        assert_eq!(
            kinds,
            vec![
                (EventKind::Start, EventSource::Schedule),
                (EventKind::ConsentPending, EventSource::Policy),
                (EventKind::ConsentGiven, EventSource::Appliance),
                (EventKind::ConsentPending, local),
            ]
        );
        c.set_active(false);
        assert!(!c.unheard());
        assert_eq!(c.meeting(), None);
        // The next meeting under `require_announcement`: a notice, no gate.
        c.set_policy(ConsentPolicy {
            version: 2,
            rule: ConsentRule::RequireAnnouncement,
            notice: "This meeting is transcribed.".into(),
        });
        c.begin(MeetingId::random(), local);
        assert_eq!(c.state(), MeetingState::Recording);
        let kinds: Vec<_> = c.take_events().iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventKind::Start, EventKind::Notice]);
    }

    #[tokio::test]
    async fn the_socket_carries_answers_and_refusals_as_worded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let control = std::sync::Arc::new(Control::default());
        let task = serve(socket_path(dir.path()), control.clone())
            .await
            .expect("serve");
        let status = send(dir.path(), &Request::Status).await.expect("send");
        assert_eq!(status, Ok("idle".to_owned()));
        let stop = send(dir.path(), &Request::Stop).await.expect("send");
        assert_eq!(stop, Err(Refusal::NotRecording.to_string()));
        control.set_active(true);
        let mark = send(dir.path(), &Request::Mark(EventKind::Highlight))
            .await
            .expect("send");
        assert_eq!(mark, Ok(Answer::Marked(EventKind::Highlight).to_string()));
        task.abort();
    }
}
