//! Local meeting control for a live agent: start, stop, pause and resume a meeting.
//!
//! A running `roomscribe-agent run` (live capture) listens on `<state_dir>/control.sock`
//! (a Unix socket, 0600 inside the 0700 state directory, so only the agent's own user
//! can use it); `roomscribe-agent meeting start|stop|pause|resume` sends one line and
//! prints the one-line answer. A room button or a kiosk script uses the same command.
//!
//! Requests are one line of text: `start [TITLE]`, `stop`, `pause`, `resume`,
//! `status`. Answers are `ok ...` or `error ...`. The decisions are made by
//! [`Control`], which the pipeline polls between audio chunks.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Start { title: Option<String> },
    Stop,
    Pause,
    Resume,
    Status,
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
            other => Err(format!(
                "unknown request {other:?}; expected start [TITLE], stop, pause, resume or status"
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
            Request::Status => "status\n".into(),
        }
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
    /// The agent is shutting down (Ctrl-C, SIGTERM): no new meeting starts.
    pub exit: AtomicBool,
    /// A start was requested, with this title.
    start: Mutex<Option<Option<String>>>,
}

impl Control {
    pub fn state(&self) -> &'static str {
        match (
            self.active.load(Ordering::Relaxed),
            self.paused.load(Ordering::Relaxed),
        ) {
            (false, _) => "idle",
            (true, false) => "recording",
            (true, true) => "paused",
        }
    }

    /// Applies a request; returns the answer line (without newline).
    pub fn handle(&self, req: &Request) -> String {
        let active = self.active.load(Ordering::Relaxed);
        match req {
            Request::Start { title } if !active => {
                if self.exit.load(Ordering::Relaxed) {
                    return "error the agent is shutting down".into();
                }
                *self.start.lock().unwrap_or_else(|p| p.into_inner()) = Some(title.clone());
                "ok starting a meeting".into()
            }
            // The current meeting is ending: start the next one right after it.
            Request::Start { title } if self.meeting_stop.load(Ordering::Relaxed) => {
                *self.start.lock().unwrap_or_else(|p| p.into_inner()) = Some(title.clone());
                "ok starting a meeting when the current one has ended".into()
            }
            Request::Start { .. } => "error a meeting is already being recorded".into(),
            Request::Stop if active => {
                self.meeting_stop.store(true, Ordering::Relaxed);
                "ok stopping the meeting".into()
            }
            Request::Pause if active => {
                self.paused.store(true, Ordering::Relaxed);
                "ok paused".into()
            }
            Request::Resume if active => {
                self.paused.store(false, Ordering::Relaxed);
                "ok recording".into()
            }
            Request::Stop | Request::Pause | Request::Resume => {
                "error no meeting is being recorded".into()
            }
            Request::Status => format!("ok {}", self.state()),
        }
    }

    /// Takes a pending start request (the pipeline thread polls this while idle).
    pub fn take_start(&self) -> Option<Option<String>> {
        self.start.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::Relaxed);
        if !active {
            self.paused.store(false, Ordering::Relaxed);
            self.meeting_stop.store(false, Ordering::Relaxed);
        }
    }
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
            let Ok((stream, _)) = listener.accept().await else {
                continue;
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
                let answer = match Request::parse(&line) {
                    Ok(req) => {
                        tracing::info!(request = ?req, "meeting control");
                        control.handle(&req)
                    }
                    Err(e) => format!("error {e}"),
                };
                let _ = w.write_all(format!("{answer}\n").as_bytes()).await;
            });
        }
    }))
}

/// Sends one request to the agent running with `state_dir`; returns its answer.
pub async fn send(state_dir: &Path, req: &Request) -> anyhow::Result<String> {
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
    Ok(line.trim().to_owned())
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
        for r in [
            Request::Start { title: None },
            Request::Start {
                title: Some("x y".into()),
            },
            Request::Pause,
            Request::Resume,
            Request::Status,
        ] {
            assert_eq!(Request::parse(&r.to_line()), Ok(r));
        }
    }

    #[test]
    fn state_machine() {
        let c = Control::default();
        assert_eq!(
            c.handle(&Request::Stop),
            "error no meeting is being recorded"
        );
        assert!(c.handle(&Request::Start { title: None }).starts_with("ok"));
        assert_eq!(c.take_start(), Some(None));
        c.set_active(true);
        assert!(c
            .handle(&Request::Start { title: None })
            .starts_with("error"));
        assert!(c.handle(&Request::Pause).starts_with("ok"));
        assert_eq!(c.state(), "paused");
        assert!(c.handle(&Request::Resume).starts_with("ok"));
        assert!(c.handle(&Request::Stop).starts_with("ok"));
        assert!(c.meeting_stop.load(Ordering::Relaxed));
        // Asked to start while the last meeting is still closing: queued, not refused.
        assert!(c.handle(&Request::Start { title: None }).starts_with("ok"));
        c.set_active(false);
        assert_eq!(c.take_start(), Some(None));
        assert_eq!(c.state(), "idle");
        assert!(!c.meeting_stop.load(Ordering::Relaxed));
    }
}
