//! Forward-only schema migrations, run at open in one transaction: a failed migration
//! (a corrupt record) leaves the data as it was, and a database from a newer build is
//! refused untouched.

use super::records::*;
use super::tx::{decode, encode};
use super::*;
use redb::{ReadableTable, TableHandle};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub(super) fn run(db: &Database) -> Result<()> {
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
            return Ok(());
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
        meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())?;
    }
    txn.commit()?;
    Ok(())
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
