//! An S3-compatible target (AWS S3, MinIO, Ceph RGW, SeaweedFS, Garage):
//! `backup.target = "s3://BUCKET/PREFIX"`, with the endpoint, region and credentials
//! in `[backup.s3]`. Path-style requests, SigV4, no checksum headers beyond what S3
//! requires (servers other than AWS refuse some). Retries are bounded: a full store
//! answers 500 to every write, and a backup must fail in seconds, not minutes.
//!
//! The target interface is synchronous (backups run on blocking threads); each call
//! runs the client's future on the runtime the target was opened in.

use super::{BackupError, Target};
use crate::config::S3Config;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::StreamExt;

pub struct S3Target {
    store: Arc<dyn ObjectStore>,
    describe: String,
    runtime: Runtime,
}

/// Where the client's futures run: the caller's runtime (from a blocking thread), or
/// one of its own when there is none.
enum Runtime {
    Handle(tokio::runtime::Handle),
    Own(tokio::runtime::Runtime),
}

impl S3Target {
    /// The target `s3://bucket/prefix` with the `[backup.s3]` settings.
    pub fn open(spec: &str, s3: &S3Config) -> Result<Self, BackupError> {
        let refused = |m: String| BackupError::Refused(format!("backup.target {spec:?}: {m}"));
        let rest = spec
            .strip_prefix("s3://")
            .ok_or_else(|| refused("not an s3:// target".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.len() < 3 {
            return Err(refused("name a bucket: s3://BUCKET/PREFIX".into()));
        }
        let endpoint = s3.endpoint.as_deref().ok_or_else(|| {
            refused("set backup.s3.endpoint (for AWS: https://s3.REGION.amazonaws.com)".into())
        })?;
        let creds = s3.credentials_file.as_deref().ok_or_else(|| {
            refused("set backup.s3.credentials_file (access key id, secret key)".into())
        })?;
        let text = crate::keys::read_secret(creds)?;
        let text = String::from_utf8_lossy(&text);
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let (Some(access), Some(secret)) = (lines.next(), lines.next()) else {
            return Err(BackupError::Refused(format!(
                "backup.s3.credentials_file {}: two lines, the access key id then the secret key",
                creds.display()
            )));
        };
        let mut options = ClientOptions::new()
            .with_timeout(Duration::from_secs(s3.timeout_secs))
            .with_connect_timeout(Duration::from_secs(10))
            .with_allow_http(endpoint.starts_with("http://"));
        if let Some(ca) = &s3.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                BackupError::Refused(format!("backup.s3.ca_file {}: {e}", ca.display()))
            })?;
            let cert = object_store::Certificate::from_pem(&pem).map_err(|e| {
                BackupError::Refused(format!("backup.s3.ca_file {}: {e}", ca.display()))
            })?;
            options = options.with_root_certificate(cert);
        }
        let retry = RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(20),
            backoff: Default::default(),
        };
        let store = AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_region(&s3.region)
            .with_bucket_name(bucket)
            .with_access_key_id(access)
            .with_secret_access_key(secret)
            .with_virtual_hosted_style_request(false)
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| refused(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = if prefix.trim_matches('/').is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix.trim_matches('/')))
        };
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(h) => Runtime::Handle(h),
            Err(_) => Runtime::Own(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| refused(format!("starting the S3 client: {e}")))?,
            ),
        };
        Ok(Self {
            store,
            describe: format!("{spec} at {endpoint}"),
            runtime,
        })
    }

    fn run<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        match &self.runtime {
            Runtime::Handle(h) => h.block_on(f),
            Runtime::Own(rt) => rt.block_on(f),
        }
    }

    fn fail(&self, name: &str, e: object_store::Error) -> BackupError {
        let what = e.to_string();
        if what.contains("InternalError") || what.contains("status 50") || what.contains("507") {
            BackupError::TargetFull {
                target: self.describe(),
                what: format!("{name}: the store refuses writes (full or failing): {what}"),
            }
        } else {
            BackupError::Target {
                target: self.describe(),
                what: format!("{name}: {what}"),
            }
        }
    }
}

impl Target for S3Target {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
        let payload = PutPayload::from(bytes.to_vec());
        self.run(self.store.put(&ObjectPath::from(name), payload))
            .map(drop)
            .map_err(|e| self.fail(name, e))
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, BackupError> {
        self.run(async {
            match self.store.get(&ObjectPath::from(name)).await {
                Ok(r) => r.bytes().await.map(|b| Some(b.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| self.fail(name, e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, BackupError> {
        let dir = prefix.trim_end_matches('/');
        let at = (!dir.is_empty()).then(|| ObjectPath::from(dir));
        let mut out = self
            .run(async {
                let mut s = self.store.list(at.as_ref());
                let mut out = vec![];
                while let Some(m) = s.next().await {
                    let m = m?;
                    out.push((m.location.to_string(), m.size));
                }
                Ok::<_, object_store::Error>(out)
            })
            .map_err(|e| self.fail(prefix, e))?;
        out.retain(|(n, _)| n.starts_with(prefix));
        out.sort();
        Ok(out)
    }

    fn delete(&self, name: &str) -> Result<(), BackupError> {
        match self.run(self.store.delete(&ObjectPath::from(name))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.fail(name, e)),
        }
    }
}
