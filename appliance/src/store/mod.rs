//! All durable state of the appliance, in one redb file (`<data_dir>/roomscribe.redb`).
//!
//! Every table definition lives here and nowhere else. Records are JSON values (see
//! [`records`]) keyed by stable ids; rows of meeting content (meetings, segments,
//! revisions, events, sealed envelopes) are sealed with their meeting's key
//! ([`cipher`], [`crate::keyring`]), so the file holds none of it in plaintext; schema changes bump [`SCHEMA_VERSION`] and add a
//! forward migration ([`migrate`]). Nothing outside `domain/` uses this module.
//!
//! The unit of work: [`Store::read`] and [`Store::write`] run a closure inside one redb
//! transaction, with typed table helpers on the transaction ([`Reads`], [`WriteTx`]).
//! A domain operation reads what it decides on, writes what it decided and appends its
//! audit entry in one `write` closure: if the closure returns an error nothing is
//! written, and hooks registered with [`WriteTx::on_commit`] (events, log lines) run
//! only once the commit is durable. The store stores; rules stay in the domain.
//!
//! Invariants:
//! - one writer transaction at a time (redb's rule), so a closure's reads and writes
//!   are serializable with every other write;
//! - every commit uses immediate durability before `write` returns, so a caller may
//!   acknowledge after it;
//! - a failed commit (a full disk, an I/O error) leaves the data as it was before the
//!   transaction; the store then reopens the database before the next transaction and
//!   reports itself unhealthy ([`Store::health`]) until that succeeds.

mod cipher;
mod dump;
mod migrate;
pub mod records;
mod tx;

pub use dump::{restore_into, table_names, Snapshot, TableStream};
pub use tx::{ReadTx, Reads, WriteTx};

use redb::{Database, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub const SCHEMA_VERSION: u64 = 6;
pub const DB_FILE: &str = "roomscribe.redb";

type Table = TableDefinition<'static, &'static str, &'static [u8]>;
/// Rows of one meeting or agent: (id, number) → JSON.
type PairTable = TableDefinition<'static, (&'static str, u64), &'static [u8]>;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const USERS: Table = TableDefinition::new("users");
const ROOMS: Table = TableDefinition::new("rooms");
const AGENTS: Table = TableDefinition::new("agents");
const ENROLL_TOKENS: Table = TableDefinition::new("enroll_tokens");
/// team id → [`records::TeamRecord`].
const TEAMS: Table = TableDefinition::new("teams");
/// role name → [`records::RoleRecord`] (custom roles only).
const ROLES: Table = TableDefinition::new("roles");
/// token id → [`records::ApiTokenRecord`].
const API_TOKENS: Table = TableDefinition::new("api_tokens");
/// room id → [`records::ScheduleRecord`].
const SCHEDULES: Table = TableDefinition::new("schedules");
/// external identity (`ldap:<uuid>`, `oidc:<issuer>#<sub>`) → username (schema 3).
const IDENTITIES: Table = TableDefinition::new("identities");
const MEETINGS: Table = TableDefinition::new("meetings");
const SEGMENTS: PairTable = TableDefinition::new("segments");
/// (agent id, envelope seq) → SHA-256 of the envelope bytes.
const ENVELOPES: PairTable = TableDefinition::new("envelopes");
/// ("meeting id/segment seq", version) → [`records::RevisionRecord`] (schema 4).
const REVISIONS: PairTable = TableDefinition::new("segment_revisions");
/// (agent id, envelope seq as acknowledged) → the meeting id, then the sealed envelope's
/// bytes exactly as signed (schema 4), sealed again with the meeting's key (schema 6):
/// the evidence of what the agent sent.
const SEALED: PairTable = TableDefinition::new("sealed_envelopes");
/// `meeting:<id>`, `room:<id>` or `team:<id>` → [`records::HoldRecord`] (schema 5).
const HOLDS: Table = TableDefinition::new("legal_holds");
/// meeting id → [`records::ErasureRecord`] (schema 5).
const ERASED: Table = TableDefinition::new("erased_meetings");
/// (meeting id, event seq) → [`records::EventRecord`].
const MEETING_EVENTS: PairTable = TableDefinition::new("meeting_events");
/// audit entry seq → chain hash (32 bytes) || the entry's exact JSON bytes. Appended
/// only; nothing rewrites a row, and only retention removes the oldest ones, up to a
/// checkpoint that it keeps ([`WriteTx::prune_audit_through`]).
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// sealed entry seq → signature (64 bytes) || the checkpoint's exact JSON bytes.
const AUDIT_CHECKPOINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_checkpoints");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("database {path} is in use by another process (is the appliance running? admin commands then go through its admin socket)")]
    Locked { path: PathBuf },
    #[error("storage: {0}")]
    Redb(#[from] redb::Error),
    #[error("record {table}/{key} is corrupt: {source}")]
    Corrupt {
        table: String,
        key: String,
        source: serde_json::Error,
    },
    #[error(
        "database schema version {found} is newer than this build understands ({SCHEMA_VERSION})"
    )]
    SchemaTooNew { found: u64 },
    /// An earlier write failed and the database could not be opened again yet.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("meeting keys: {0}")]
    Keys(#[from] crate::keyring::KeyringError),
    /// The meeting's content is sealed with a key the key directory does not have
    /// (erased, or the key directory is not this data directory's).
    #[error("meeting {meeting} cannot be read: its key is not in the key directory")]
    KeyMissing { meeting: String },
    #[error("record {table}/{key} does not open with its meeting's key (damaged or moved)")]
    Unauthentic { table: String, key: String },
    /// A table's stream being restored is not well formed.
    #[error("restoring table {table}: {what}")]
    Restore { table: String, what: String },
    #[error("the key directory (key store {found}) is not this data directory's (key store {expected}): configure storage.key_dir to the directory this data was written with")]
    OtherKeystore { found: String, expected: String },
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Redb(e.into()) }
        }
    )*};
}
redb_from!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T> = std::result::Result<T, StoreError>;

/// Where the database lives: a file, or (tests) memory.
enum Location {
    File(PathBuf),
    Memory,
}

pub struct Store {
    db: RwLock<Option<Arc<Database>>>,
    keys: Arc<crate::keyring::Keyring>,
    location: Location,
    /// Why the last write failed, until the database was opened again, and when it
    /// was last tried (at most once a second: opening after a failure repairs).
    failure: Mutex<Option<String>>,
    last_reopen: Mutex<Option<std::time::Instant>>,
    last_probe: Mutex<Option<std::time::Instant>>,
    commits: AtomicU64,
}

impl Store {
    /// Opens (creating if new) and migrates `<data_dir>/roomscribe.redb`, whose
    /// meeting content is sealed with the keys of `keys`.
    pub fn open(data_dir: &Path, keys: Arc<crate::keyring::Keyring>) -> Result<Self> {
        let path = data_dir.join(DB_FILE);
        let fresh = data_dir.join(format!("{DB_FILE}.new"));
        if fresh.exists() {
            // A copy cut short by a crash: the original is intact.
            std::fs::remove_file(&fresh).map_err(|e| StoreError::Redb(e.into()))?;
        }
        let db = open_file(&path)?;
        if migrate::run(&db, &keys)? {
            // Content was sealed in place: copy what is live into a new file, so no
            // plaintext stays behind in freed pages, and put it in the old one's place.
            migrate::copy_into(&db, &fresh)?;
            drop(db);
            std::fs::rename(&fresh, &path).map_err(|e| StoreError::Redb(e.into()))?;
            roomscribe_config::fsutil::sync_dir(data_dir)
                .map_err(|e| StoreError::Redb(e.into()))?;
            tracing::info!("storage copied into a fresh file after sealing meeting content");
        } else {
            drop(db);
        }
        Self::with(open_file(&path)?, Location::File(path), keys)
    }

    /// A store in memory, with keys in memory (tests of the domain and of the store).
    pub fn in_memory() -> Result<Self> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|source| StoreError::Open {
                path: PathBuf::from(":memory:"),
                source,
            })?;
        Self::with(
            db,
            Location::Memory,
            Arc::new(crate::keyring::Keyring::in_memory()),
        )
    }

    fn with(db: Database, location: Location, keys: Arc<crate::keyring::Keyring>) -> Result<Self> {
        migrate::run(&db, &keys)?;
        Ok(Self {
            db: RwLock::new(Some(Arc::new(db))),
            keys,
            location,
            failure: Mutex::new(None),
            last_reopen: Mutex::new(None),
            last_probe: Mutex::new(None),
            commits: AtomicU64::new(0),
        })
    }

    /// Runs `f` in one read transaction: it sees one consistent state.
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&ReadTx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let db = self.database()?;
        let txn = redb::ReadableDatabase::begin_read(&*db).map_err(|e| self.failed(e.into()))?;
        f(&ReadTx::new(txn, self.keys.clone()))
    }

    /// Runs `f` in one write transaction and commits durably if it returns `Ok`; on
    /// `Err` nothing it wrote is kept. Hooks from [`WriteTx::on_commit`] run after the
    /// commit.
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let db = self.database()?;
        let txn = db.begin_write().map_err(|e| self.failed(e.into()))?;
        let mut tx = WriteTx::new(txn, self.keys.clone());
        let out = match f(&mut tx) {
            Ok(v) => v,
            Err(e) => {
                // An I/O error inside the closure makes the abort fail too: the
                // database must then be opened again.
                if let Err(broken) = tx.abort() {
                    self.failed(broken);
                }
                return Err(e);
            }
        };
        let hooks = tx.commit().map_err(|e| self.failed(e))?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        if lock(&self.failure).take().is_some() {
            tracing::info!("storage takes writes again");
        }
        for hook in hooks {
            hook();
        }
        Ok(out)
    }

    /// Write transactions committed since the store was opened (a metric, and what
    /// tests use to see that a refused request wrote nothing).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// `Err(reason)` while storage cannot take writes: after a write failed (a full
    /// disk), a small probe write is tried (at most once a second) and the store is
    /// healthy again only once one commits. The appliance is not ready meanwhile.
    pub fn health(&self) -> std::result::Result<(), String> {
        let Some(why) = lock(&self.failure).clone() else {
            return match self.database() {
                Ok(db) => redb::ReadableDatabase::begin_read(&*db)
                    .map(drop)
                    .map_err(|e| self.failed(e.into()).to_string()),
                Err(e) => Err(e.to_string()),
            };
        };
        {
            let mut last = lock(&self.last_probe);
            if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
                return Err(why);
            }
            *last = Some(std::time::Instant::now());
        }
        let probe = self.write(|tx| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            tx.put_meta("health_probe", &now.to_be_bytes())
        });
        probe.map_err(|e| format!("{why} (still: {e})"))
    }

    /// Whether `e` says the disk is full.
    pub fn is_disk_full(e: &StoreError) -> bool {
        match e {
            StoreError::Redb(redb::Error::Io(io)) => io.raw_os_error() == Some(28),
            _ => false,
        }
    }

    /// The meeting keys this store seals content with.
    pub fn keys(&self) -> &Arc<crate::keyring::Keyring> {
        &self.keys
    }

    /// Size of the database file in bytes (0 in memory).
    pub fn file_size(&self) -> u64 {
        match &self.location {
            Location::File(p) => std::fs::metadata(p).map_or(0, |m| m.len()),
            Location::Memory => 0,
        }
    }

    /// The open database, opening it again first if a write failed since.
    fn database(&self) -> Result<Arc<Database>> {
        if let Some(db) = read_lock(&self.db).as_ref() {
            return Ok(db.clone());
        }
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone()); // another thread reopened it meanwhile
        }
        let why = || lock(&self.failure).clone().unwrap_or_default();
        let Location::File(path) = &self.location else {
            return Err(StoreError::Unavailable(why()));
        };
        {
            let mut last = lock(&self.last_reopen);
            if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
                return Err(StoreError::Unavailable(why()));
            }
            *last = Some(std::time::Instant::now());
        }
        match open_file(path).and_then(|db| migrate::run(&db, &self.keys).map(|_| db)) {
            Ok(db) => {
                let db = Arc::new(db);
                *slot = Some(db.clone());
                tracing::warn!("storage reopened after a failed write");
                Ok(db)
            }
            Err(e) => {
                tracing::error!(error = %e, "storage could not be opened again");
                Err(StoreError::Unavailable(format!(
                    "{} (reopening: {e})",
                    why()
                )))
            }
        }
    }

    /// Records a failure of the database itself (not of a rule): the database is
    /// closed, to be opened again before the next transaction (redb refuses further
    /// work on a database whose commit failed).
    fn failed(&self, e: StoreError) -> StoreError {
        if matches!(&e, StoreError::Redb(_)) {
            tracing::error!(error = %e, "storage failed; it is opened again before the next transaction");
            *lock(&self.failure) = Some(e.to_string());
            if matches!(self.location, Location::File(_)) {
                *self.db.write().unwrap_or_else(|p| p.into_inner()) = None;
            }
        }
        e
    }
}

fn open_file(path: &Path) -> Result<Database> {
    Database::create(path).map_err(|source| match source {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
            path: path.to_owned(),
        },
        source => StoreError::Open {
            path: path.to_owned(),
            source,
        },
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read_lock<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
