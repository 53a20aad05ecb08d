//! Forward-only schema migrations, run at open in one transaction: a failed migration
//! (a corrupt record) leaves the data as it was, and a database from a newer build is
//! refused untouched.

use super::records::*;
use super::tx::{decode, encode, pair_row};
use super::*;
use crate::keyring::Keyring;
use redb::{ReadableTable, TableHandle};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Migrates `db` to this build's schema. Returns whether meeting content was sealed
/// just now (its plaintext may then linger in the file's free pages: see
/// [`copy_into`]).
pub(super) fn run(db: &Database, keys: &Keyring) -> Result<bool> {
    let sealed = upgrade(db, keys)?;
    bind_keystore(db, keys)?;
    Ok(sealed)
}

/// Copies every table of `src` into a new database at `path`. redb does not zero the
/// pages it frees (nor does compaction scrub them), so after meeting content was
/// sealed in place the old file still holds its plaintext in free pages; a fresh copy
/// holds only what is live.
pub(super) fn copy_into(src: &Database, path: &Path) -> Result<()> {
    struct Copy {
        from: redb::ReadTransaction,
        to: redb::WriteTransaction,
    }
    impl super::dump::Tables<StoreError> for Copy {
        fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
            &mut self,
            def: TableDefinition<'static, K, V>,
        ) -> Result<()> {
            let source = self.from.open_table(def)?;
            let mut target = self.to.open_table(def)?;
            for row in source.iter()? {
                let (k, v) = row?;
                target.insert(k.value(), v.value())?;
            }
            Ok(())
        }
    }
    let dst = Database::create(path).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    let mut copy = Copy {
        from: redb::ReadableDatabase::begin_read(src)?,
        to: dst.begin_write()?,
    };
    super::dump::each_table(&mut copy)?;
    copy.to.commit()?;
    Ok(())
}

/// The database records the key store it was written with: opening it with another
/// (an empty or wrong key directory) is refused before anything is read or written,
/// so a lost key directory never looks like "every meeting's key is missing".
fn bind_keystore(db: &Database, keys: &Keyring) -> Result<()> {
    const KEY: &str = "keystore_id";
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        let found = meta
            .get(KEY)?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned());
        match found {
            Some(f) if f == keys.id() => {}
            Some(f) => {
                return Err(StoreError::OtherKeystore {
                    found: keys.id().to_owned(),
                    expected: f,
                })
            }
            None => {
                meta.insert(KEY, keys.id().as_bytes())?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

fn upgrade(db: &Database, keys: &Keyring) -> Result<bool> {
    let mut sealed = false;
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        let found = meta
            .get("schema_version")?
            .map(|v| u64::from_be_bytes(v.value().try_into().unwrap_or([0; 8])));
        let from = match found {
            Some(v) if v > SCHEMA_VERSION => return Err(StoreError::SchemaTooNew { found: v }),
            Some(v) => v,
            None => SCHEMA_VERSION,
        };
        if from == SCHEMA_VERSION && found.is_some() {
            drop(meta);
            txn.abort()?;
            return Ok(false);
        }
        // Create every table so read transactions never meet a missing one.
        txn.open_table(USERS)?;
        txn.open_table(ROOMS)?;
        txn.open_table(AGENTS)?;
        txn.open_table(ENROLL_TOKENS)?;
        txn.open_table(MEETINGS)?;
        txn.open_table(SEGMENTS)?;
        txn.open_table(ENVELOPES)?;
        txn.open_table(MEETING_EVENTS)?;
        txn.open_table(SCHEDULES)?;
        txn.open_table(TEAMS)?;
        txn.open_table(ROLES)?;
        txn.open_table(AUDIT)?;
        txn.open_table(AUDIT_CHECKPOINTS)?;
        txn.open_table(API_TOKENS)?;
        txn.open_table(IDENTITIES)?;
        // Schema 4 adds only tables (segment revisions, sealed envelopes).
        txn.open_table(REVISIONS)?;
        txn.open_table(SEALED)?;
        // Schema 5 adds only tables (legal holds, erased meetings).
        txn.open_table(HOLDS)?;
        txn.open_table(ERASED)?;
        if from < 2 {
            migrate_1_to_2(&txn)?;
            tracing::info!("storage migrated from schema 1 to 2 (roles and teams)");
        }
        if from < 3 {
            migrate_2_to_3(&txn)?;
            tracing::info!("storage migrated from schema {from} to 3 (account ids)");
        }
        if from < 6 {
            let rows = migrate_5_to_6(&txn, keys)?;
            sealed = rows > 0;
            tracing::info!(rows, "storage migrated from schema {from} to 6 (meeting content sealed with per-meeting keys)");
        }
        meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())?;
    }
    txn.commit()?;
    Ok(sealed)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Schema 2: a user's one role becomes a grant of the built-in `admin` or `member`,
/// and — so that nobody sees less than before the upgrade — every user, room and
/// meeting is put in one team, "Everyone".
fn migrate_1_to_2(txn: &redb::WriteTransaction) -> Result<()> {
    let mut everyone = TeamRecord {
        id: uuid::Uuid::new_v4().to_string(),
        name: "Everyone".into(),
        members: Default::default(),
        created_at_ms: now_ms(),
        consent: Default::default(),
        trackers: vec![],
    };
    let mut users = 0;
    rewrite::<UserRecord>(txn, USERS, |u| {
        if let Some(role) = u.legacy_role.take() {
            if u.grants.is_empty() {
                u.grants.push(GrantRecord {
                    role: match role {
                        LegacyRole::Admin => "admin",
                        LegacyRole::User => "member",
                    }
                    .into(),
                    expires_at_ms: None,
                    granted_by: "migration".into(),
                    granted_at_ms: u.created_at_ms,
                });
            }
        }
        everyone.members.insert(u.username.clone());
        users += 1;
    })?;
    let team = everyone.id.clone();
    let mut rooms = rewrite::<RoomRecord>(txn, ROOMS, |r| r.team_id = Some(team.clone()))?;
    rooms += rewrite::<MeetingRecord>(txn, MEETINGS, |m| m.team_id = Some(team.clone()))?;
    if rooms > 0 || users > 0 {
        txn.open_table(TEAMS)?
            .insert(everyone.id.as_str(), encode(&everyone).as_slice())?;
    }
    Ok(())
}

/// Schema 3: every account gets a stable id, every API token names its owner's id,
/// and tokens whose owner no longer exists are removed (a new account of that name
/// must not inherit them).
fn migrate_2_to_3(txn: &redb::WriteTransaction) -> Result<()> {
    let mut ids = std::collections::HashMap::new();
    rewrite::<UserRecord>(txn, USERS, |u| {
        if u.id.is_empty() {
            u.id = uuid::Uuid::new_v4().to_string();
        }
        ids.insert(u.username.clone(), u.id.clone());
    })?;
    let mut table = txn.open_table(API_TOKENS)?;
    let mut keep = vec![];
    let mut orphans = vec![];
    for row in table.iter()? {
        let (k, v) = row?;
        let mut t: ApiTokenRecord = decode(API_TOKENS.name(), k.value(), v.value())?;
        match ids.get(&t.owner) {
            Some(id) => {
                t.owner_id = id.clone();
                keep.push(t);
            }
            None => orphans.push(t.id),
        }
    }
    for t in keep {
        table.insert(t.id.as_str(), encode(&t).as_slice())?;
    }
    for id in orphans {
        table.remove(id.as_str())?;
    }
    Ok(())
}

/// Applies `f` to every record of a table inside a migration; returns how many.
fn rewrite<T: Serialize + DeserializeOwned>(
    txn: &redb::WriteTransaction,
    def: Table,
    mut f: impl FnMut(&mut T),
) -> Result<usize> {
    let mut table = txn.open_table(def)?;
    let mut out = vec![];
    for row in table.iter()? {
        let (k, v) = row?;
        let mut r: T = decode(def.name(), k.value(), v.value())?;
        f(&mut r);
        out.push((k.value().to_owned(), encode(&r)));
    }
    for (k, v) in &out {
        table.insert(k.as_str(), v.as_slice())?;
    }
    Ok(out.len())
}

/// Schema 6: every row of meeting content is sealed with its meeting's key (created
/// now). Returns how many rows were sealed.
fn migrate_5_to_6(txn: &redb::WriteTransaction, keys: &Keyring) -> Result<usize> {
    let mut n = 0;
    {
        let mut t = txn.open_table(MEETINGS)?;
        let mut rows = vec![];
        for row in t.iter()? {
            let (k, v) = row?;
            let id = k.value().to_owned();
            let sealed = cipher::seal(&*keys.key_or_create(&id)?, MEETINGS.name(), &id, v.value());
            rows.push((id, sealed));
        }
        for (k, v) in &rows {
            t.insert(k.as_str(), v.as_slice())?;
        }
        n += rows.len();
    }
    for def in [SEGMENTS, MEETING_EVENTS, REVISIONS] {
        let mut t = txn.open_table(def)?;
        let mut rows = vec![];
        for row in t.iter()? {
            let (k, v) = row?;
            let (id, seq) = k.value();
            // Revisions are keyed "<meeting id>/<segment seq>".
            let meeting = id.split('/').next().unwrap_or(id);
            let sealed = cipher::seal(
                &*keys.key_or_create(meeting)?,
                def.name(),
                &pair_row(id, seq),
                v.value(),
            );
            rows.push((id.to_owned(), seq, sealed));
        }
        for (id, seq, v) in &rows {
            t.insert((id.as_str(), *seq), v.as_slice())?;
        }
        n += rows.len();
    }
    let mut t = txn.open_table(SEALED)?;
    let mut rows = vec![];
    for row in t.iter()? {
        let (k, v) = row?;
        let (agent, seq) = k.value();
        let key = pair_row(agent, seq);
        let meeting = roomscribe_protocol::EnvelopeHeader::parse(v.value())
            .map_err(|_| StoreError::Unauthentic {
                table: SEALED.name().to_owned(),
                key: key.clone(),
            })?
            .meeting_id
            .to_string();
        let sealed = cipher::seal(
            &*keys.key_or_create(&meeting)?,
            SEALED.name(),
            &key,
            v.value(),
        );
        rows.push((agent.to_owned(), seq, cipher::tag_meeting(&meeting, sealed)));
    }
    for (agent, seq, v) in &rows {
        t.insert((agent.as_str(), *seq), v.as_slice())?;
    }
    Ok(n + rows.len())
}
