//! `roomscribe-agent`: parse the command line, load config, start logging, call the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use roomscribe_agent::config::{AgentConfig, EXAMPLE};
use roomscribe_agent::replication::replicate::Outcome;
use roomscribe_agent::speech::model::ModelKind;
use roomscribe_agent::{Input, RunOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "roomscribe-agent",
    version,
    about = "Roomscribe edge agent: transcribes a meeting room locally and replicates sealed transcripts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Configuration file (TOML); see `roomscribe-agent config example`.
    #[arg(long, env = "ROOMSCRIBE_AGENT_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// State directory: identity, key and the durable queue (overrides `state_dir`).
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll with an appliance using a one-time token from `roomscribe enroll-token create`.
    Enroll {
        /// The appliance's QUIC ingest address, HOST:PORT (default port 8444).
        #[arg(long)]
        appliance: String,
        /// The token (visible in the process list; prefer --token-file on shared machines).
        #[arg(long, required_unless_present = "token_file")]
        token: Option<String>,
        /// File whose first line is the token.
        #[arg(long)]
        token_file: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Transcribe a meeting: from --input FILE.wav, or live from the configured device.
    /// With --input it exits once the file is transcribed and every envelope is
    /// acknowledged, or, if the appliance is unreachable, once everything is safely queued.
    Run {
        #[command(flatten)]
        common: Common,
        /// Vosk model directory (overrides `model`).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Engine: vosk, whisper or two-pass (overrides `engine`).
        #[arg(long)]
        engine: Option<roomscribe_agent::config::Engine>,
        /// CTranslate2 Whisper model directory (overrides `whisper.model`).
        #[arg(long)]
        whisper_model: Option<PathBuf>,
        /// A WAV file (any common rate and channel count) instead of live capture.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Feed the file at this multiple of real time (1 = like a live room).
        #[arg(long)]
        pace: Option<f64>,
        /// Meeting title (default: file name, or "Live capture (device)").
        #[arg(long)]
        title: Option<String>,
        /// Print each transcript segment to stdout. Off by default so that transcript
        /// text never reaches service logs (journald).
        #[arg(long)]
        print_segments: bool,
    },
    /// Only replicate what is queued; exit when the queue is empty.
    Drain {
        #[command(flatten)]
        common: Common,
        /// Give up after this many seconds of failing to reach the appliance (default: never).
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Control the meeting of a running live agent (`run` without --input).
    Meeting {
        #[command(subcommand)]
        action: MeetingAction,
        #[command(flatten)]
        common: Common,
    },
    /// List audio input devices.
    Devices,
    /// Print identity and queue status (JSON).
    Status {
        #[command(flatten)]
        common: Common,
    },
    /// Check this agent's setup and say what to fix (exit 1 on any failure).
    Doctor {
        #[command(flatten)]
        common: Common,
    },
    /// The queue and its quarantine: envelopes the appliance refused for good.
    Queue {
        #[command(subcommand)]
        action: QueueAction,
        #[command(flatten)]
        common: Common,
    },
    /// Vosk models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Install a model you supply (a model directory, or a .zip/.whl/.tar/.tar.gz of
    /// one) after checking that it loads: a Vosk model where `model` in agent.toml
    /// points, a CTranslate2 Whisper model where `whisper.model` points. The model
    /// installed before is kept beside it as <model>.previous.
    Install {
        /// Model directory or archive.
        source: PathBuf,
        /// Install here instead of `model` / `whisper.model` from the configuration.
        #[arg(long)]
        to: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    /// What is queued, kept and quarantined, with the appliance's reasons (JSON).
    List,
    /// One quarantined envelope: why it was refused, its meeting and size (JSON).
    Show { seq: u64 },
    /// Send a quarantined envelope again, at the end of the queue (after fixing
    /// what the appliance refused). The agent must be stopped.
    Requeue { seq: u64 },
    /// Delete a quarantined envelope for good; the appliance is told and audits it.
    /// The agent must be stopped.
    Discard { seq: u64 },
}

#[derive(Subcommand)]
enum MeetingAction {
    /// Start recording a meeting (the microphone opens now).
    Start {
        /// Meeting title shown in the console.
        #[arg(long)]
        title: Option<String>,
    },
    /// End the meeting (the microphone closes; the agent waits for the next start).
    Stop,
    /// Stop transcribing for a while; the meeting stays open.
    Pause,
    /// Transcribe again after a pause.
    Resume,
    /// Mark this moment of the meeting: an action item or a highlight.
    Mark {
        #[arg(value_enum)]
        what: MarkWhat,
    },
    /// Record, from the room, that everyone present consented (`given`: transcription
    /// starts under a `require_all` policy) or that someone withdrew (`withdrawn`:
    /// nothing more is transcribed until consent is given again).
    Consent {
        #[arg(value_enum)]
        what: ConsentWhat,
    },
    /// Print idle, recording, paused or awaiting_consent.
    Status,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MarkWhat {
    ActionItem,
    Highlight,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ConsentWhat {
    Given,
    Withdrawn,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the commented example configuration (all defaults).
    Example,
}

fn load(common: &Common) -> anyhow::Result<AgentConfig> {
    // An installed binary (under /usr) reads the packaged configuration when none is
    // named, so `roomscribe-agent model install` run by root finds the service's paths.
    let file = common.config.clone().or_else(|| {
        let exe = std::env::current_exe().ok()?;
        let etc = PathBuf::from("/etc/roomscribe/agent.toml");
        (exe.starts_with("/usr/") && etc.is_file()).then_some(etc)
    });
    let (mut config, warnings) = AgentConfig::load(file.as_deref(), std::env::vars())?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    if let Some(d) = &common.state_dir {
        config.state_dir = d.clone();
    }
    Ok(config)
}

fn clock(s: f64) -> String {
    format!("{:02}:{:04.1}", (s / 60.0) as u64, s % 60.0)
}

fn report(outcome: &Outcome, queue_dir: &std::path::Path) {
    match outcome {
        Outcome::Drained { acknowledged } => println!("done: every envelope is acknowledged by the appliance ({acknowledged} sent now)"),
        Outcome::Unreachable { queued, reason, .. } => println!(
            "appliance unreachable ({reason}): {queued} envelope(s) safely queued in {}; `roomscribe-agent drain` or the next run sends them",
            queue_dir.display()
        ),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Enroll {
            appliance,
            token,
            token_file,
            common,
        } => {
            let config = load(&common)?;
            let token = match (token, token_file) {
                (Some(t), _) => t,
                (None, Some(f)) => std::fs::read_to_string(&f)
                    .with_context(|| format!("--token-file {}", f.display()))?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned(),
                (None, None) => anyhow::bail!("--token or --token-file is required"),
            };
            let id = roomscribe_agent::enroll(&config.state_dir, &appliance, &token).await?;
            println!(
                "enrolled as agent {} in room \"{}\" (identity in {})",
                id.agent_id,
                id.room,
                config.state_dir.display()
            );
            Ok(())
        }
        Command::Run {
            common,
            model,
            engine,
            whisper_model,
            input,
            pace,
            title,
            print_segments,
        } => {
            let mut config = load(&common)?;
            if let Some(e) = engine {
                config.engine = e;
            }
            if let Some(w) = whisper_model {
                config.whisper.model = w;
            }
            if let Some(p) = pace {
                anyhow::ensure!(p.is_finite() && p > 0.0, "--pace must be a positive number");
            }
            let model = model.unwrap_or_else(|| config.model.clone());
            let input = match input {
                Some(f) => Input::File(f),
                None => Input::Capture(config.capture.device.clone()),
            };
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = stop.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!(
                        "stopping: finishing the current segment and replicating what is queued"
                    );
                    stop2.store(true, Ordering::Relaxed);
                }
            });
            let print = Arc::new(move |s: &roomscribe_protocol::Segment| {
                if print_segments {
                    println!(
                        "[{} - {}] ({:.2}) {}",
                        clock(s.start),
                        clock(s.end),
                        s.confidence,
                        s.text
                    );
                } else {
                    println!(
                        "segment {} sealed ({} - {})",
                        s.seq,
                        clock(s.start),
                        clock(s.end)
                    );
                }
            });
            let r = roomscribe_agent::run(
                &config,
                RunOptions {
                    input,
                    model,
                    pace,
                    title,
                },
                stop,
                print,
            )
            .await?;
            if let Some(t) = &r.transcribed {
                println!(
                    "meeting {}: {} segment(s) sealed, {:.1} s of silence skipped",
                    t.meeting_id, t.segments_sealed, t.skipped_silence_s
                );
                if let Some((cpu_s, peak_rss)) =
                    roomscribe_agent::replication::health::process_usage()
                {
                    println!(
                        "usage: {:.1} s of audio in {:.1} s (real-time factor {:.3}), {:.1} s CPU, peak RSS {:.0} MiB",
                        t.audio_s,
                        t.wall_s,
                        t.wall_s / t.audio_s.max(1e-9),
                        cpu_s,
                        peak_rss as f64 / 1048576.0
                    );
                }
            }
            report(&r.outcome, &r.queue_dir);
            Ok(())
        }
        Command::Drain { common, timeout } => {
            let config = load(&common)?;
            let outcome =
                roomscribe_agent::drain(&config, timeout.map(Duration::from_secs)).await?;
            report(
                &outcome,
                &roomscribe_agent::replication::queue::dir(&config.state_dir),
            );
            Ok(())
        }
        Command::Meeting { action, common } => {
            use roomscribe_agent::meeting::control::{send, Request};
            let config = load(&common)?;
            let req = match action {
                MeetingAction::Start { title } => Request::Start { title },
                MeetingAction::Stop => Request::Stop,
                MeetingAction::Pause => Request::Pause,
                MeetingAction::Resume => Request::Resume,
                MeetingAction::Mark { what } => Request::Mark(match what {
                    MarkWhat::ActionItem => roomscribe_protocol::EventKind::ActionItem,
                    MarkWhat::Highlight => roomscribe_protocol::EventKind::Highlight,
                }),
                MeetingAction::Consent { what } => {
                    Request::Consent(matches!(what, ConsentWhat::Given))
                }
                MeetingAction::Status => Request::Status,
            };
            // Validate locally for a clear message before reaching the agent.
            Request::parse(&req.to_line()).map_err(|e| anyhow::anyhow!(e))?;
            match send(&config.state_dir, &req).await? {
                Ok(answer) => {
                    println!("{answer}");
                    Ok(())
                }
                Err(refusal) => anyhow::bail!("{refusal}"),
            }
        }
        Command::Devices => {
            let devices = roomscribe_agent::capture::audio::list_devices()?;
            if devices.is_empty() {
                println!("no audio input devices found");
            }
            for (i, name) in devices {
                println!("{i}: {name}");
            }
            Ok(())
        }
        Command::Doctor { common } => {
            use roomscribe_config::doctor::{fail, print};
            let findings = match load(&common) {
                Ok(config) => roomscribe_agent::doctor::check(&config).await,
                Err(e) => vec![fail(
                    format!("configuration: {e:#}"),
                    "fix the file or variable named; `roomscribe-agent config example` shows every key",
                )],
            };
            if print(&findings) > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Status { common } => {
            let config = load(&common)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&roomscribe_agent::status(&config)?)?
            );
            Ok(())
        }
        Command::Queue { action, common } => {
            use roomscribe_agent::QueueDecision;
            let config = load(&common)?;
            let (seq, decision) = match action {
                QueueAction::List => {
                    let v = roomscribe_agent::queue_list(&config)?;
                    println!("{}", serde_json::to_string_pretty(&v)?);
                    return Ok(());
                }
                QueueAction::Show { seq } => {
                    let v = roomscribe_agent::queue_show(&config, seq)?;
                    println!("{}", serde_json::to_string_pretty(&v)?);
                    return Ok(());
                }
                QueueAction::Requeue { seq } => (seq, QueueDecision::Requeue),
                QueueAction::Discard { seq } => (seq, QueueDecision::Discard),
            };
            let new = roomscribe_agent::queue_decide(&config, seq, decision)?;
            match decision {
                QueueDecision::Requeue => println!("envelope {seq} is queued again as {new}; it is sent with the rest of the queue"),
                QueueDecision::Discard => println!("envelope {seq} is deleted; the notice telling the appliance is queued as {new}"),
            }
            Ok(())
        }
        Command::Model(ModelCommand::Install { source, to, common }) => {
            let config = load(&common)?;
            let done = tokio::task::spawn_blocking(move || {
                roomscribe_agent::speech::model::install(
                    &source,
                    |kind| {
                        to.or(Some(match kind {
                            ModelKind::Vosk => config.model,
                            ModelKind::Whisper => config.whisper.model,
                        }))
                    },
                    &config.state_dir,
                )
            })
            .await??;
            println!(
                "{} model {:?} installed at {} ({:.0} MiB; it loads){}",
                match done.kind {
                    ModelKind::Vosk => "Vosk",
                    ModelKind::Whisper => "Whisper",
                },
                done.name,
                done.path.display(),
                done.bytes as f64 / 1_048_576.0,
                done.previous
                    .map(|p| format!("; the previous one is in {}", p.display()))
                    .unwrap_or_default()
            );
            Ok(())
        }
        Command::Config(ConfigCommand::Example) => {
            print!("{EXAMPLE}");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROOMSCRIBE_AGENT_LOG")
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,quinn=warn,quinn_proto=warn,rustls=warn")
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("roomscribe-agent: starting runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let cause: &(dyn std::error::Error + 'static) = e.as_ref();
            eprintln!(
                "roomscribe-agent: {}",
                roomscribe_config::errtext::one_line(cause)
            );
            ExitCode::FAILURE
        }
    }
}
