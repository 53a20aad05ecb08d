//! Every table as a stream of rows, out of one read transaction and back into a new
//! database file: what backups are made of and restored from.
//!
//! [`each_table`] is the one list of tables; the copy after sealing
//! ([`super::migrate::copy_into`]), the backup snapshot and the restore all walk it,
//! so none of them can miss a table added later.
//!
//! A table's stream is its rows in key order, each `u32 LE key length ‖ key bytes ‖
//! u32 LE value length ‖ value bytes`, the bytes exactly as redb stores them: sealed
//! rows of meeting content stay ciphertext, so the stream needs no meeting key.

use super::*;
use redb::{ReadableTable, TableHandle};
use std::io::{self, Read};

/// Visits each table definition (generic over its key and value types).
pub(super) trait Tables<E> {
    fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        def: TableDefinition<'static, K, V>,
    ) -> std::result::Result<(), E>;
}

/// Every table of the schema, in a fixed order.
pub(super) fn each_table<E>(v: &mut impl Tables<E>) -> std::result::Result<(), E> {
    v.table(META)?;
    for def in [
        USERS,
        ROOMS,
        AGENTS,
        ENROLL_TOKENS,
        TEAMS,
        ROLES,
        API_TOKENS,
        SCHEDULES,
        IDENTITIES,
        MEETINGS,
        HOLDS,
        ERASED,
    ] {
        v.table(def)?;
    }
    for def in [SEGMENTS, ENVELOPES, REVISIONS, SEALED, MEETING_EVENTS] {
        v.table(def)?;
    }
    v.table(AUDIT)?;
    v.table(AUDIT_CHECKPOINTS)
}

/// The names of every table, in [`each_table`]'s order.
pub fn table_names() -> Vec<String> {
    struct Names(Vec<String>);
    impl Tables<()> for Names {
        fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
            &mut self,
            def: TableDefinition<'static, K, V>,
        ) -> std::result::Result<(), ()> {
            self.0.push(def.name().to_owned());
            Ok(())
        }
    }
    let mut n = Names(vec![]);
    let _ = each_table(&mut n);
    n.0
}

/// One consistent state of the whole database (a read transaction): what a backup
/// streams out while writers go on.
pub struct Snapshot {
    txn: redb::ReadTransaction,
}

type Rows<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + 'a>;

/// A table's rows as bytes ([`Read`]), counted.
pub struct TableStream<'a> {
    rows: Rows<'a>,
    buf: Vec<u8>,
    pos: usize,
    count: u64,
}

impl TableStream<'_> {
    /// Rows read so far.
    pub fn rows(&self) -> u64 {
        self.count
    }
}

impl Read for TableStream<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rows.next() {
                None => return Ok(0),
                Some(Err(e)) => return Err(io::Error::other(e)),
                Some(Ok((k, v))) => {
                    self.buf.clear();
                    self.pos = 0;
                    for part in [&k, &v] {
                        let len = u32::try_from(part.len()).map_err(io::Error::other)?;
                        self.buf.extend_from_slice(&len.to_le_bytes());
                        self.buf.extend_from_slice(part);
                    }
                    self.count += 1;
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Store {
    /// Opens a read transaction over everything: the state at this moment, whatever
    /// commits afterwards.
    pub fn snapshot(&self) -> Result<Snapshot> {
        if let Err(why) = self.health() {
            return Err(StoreError::Unavailable(why));
        }
        let db = self.database()?;
        let txn = redb::ReadableDatabase::begin_read(&*db).map_err(|e| self.failed(e.into()))?;
        Ok(Snapshot { txn })
    }
}

impl Snapshot {
    /// Calls `f` with each table's name and its row stream, in [`each_table`]'s order.
    pub fn each_table<E: From<StoreError>>(
        &self,
        f: &mut dyn FnMut(&str, &mut TableStream<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        struct Out<'s, 'f, E> {
            txn: &'s redb::ReadTransaction,
            f: &'f mut dyn FnMut(&str, &mut TableStream<'_>) -> std::result::Result<(), E>,
        }
        impl<E: From<StoreError>> Tables<E> for Out<'_, '_, E> {
            fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
                &mut self,
                def: TableDefinition<'static, K, V>,
            ) -> std::result::Result<(), E> {
                let table = self.txn.open_table(def).map_err(StoreError::from)?;
                let iter = table.iter().map_err(StoreError::from)?;
                let rows: Rows<'_> = Box::new(iter.map(|row| {
                    let (k, v) = row?;
                    let (kv, vv) = (k.value(), v.value());
                    let key = K::as_bytes(&kv).as_ref().to_vec();
                    let value = V::as_bytes(&vv).as_ref().to_vec();
                    Ok((key, value))
                }));
                let mut stream = TableStream {
                    rows,
                    buf: vec![],
                    pos: 0,
                    count: 0,
                };
                (self.f)(def.name(), &mut stream)
            }
        }
        each_table(&mut Out { txn: &self.txn, f })
    }
}

/// Gives a table's stream by name.
pub type OpenStream<'a, E> = dyn FnMut(&str) -> std::result::Result<Box<dyn Read>, E> + 'a;

/// Rows written per commit while restoring (bounds the memory of one transaction).
const RESTORE_BATCH: u64 = 50_000;
/// The longest key or value a stream may carry (a sealed envelope is far smaller).
const MAX_PART: usize = 64 << 20;

/// Writes a new database file at `path` (which must not exist) from each table's
/// stream, as `open(name)` gives it, then syncs it. The caller renames it into place.
pub fn restore_into<E: From<StoreError>>(
    path: &Path,
    open: &mut OpenStream<'_, E>,
) -> std::result::Result<u64, E> {
    struct In<'o, E> {
        db: Database,
        open: &'o mut OpenStream<'o, E>,
        rows: u64,
    }
    impl<E: From<StoreError>> Tables<E> for In<'_, E> {
        fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
            &mut self,
            def: TableDefinition<'static, K, V>,
        ) -> std::result::Result<(), E> {
            let name = def.name().to_owned();
            let damaged = |what: String| StoreError::Restore {
                table: name.clone(),
                what,
            };
            let mut r = (self.open)(&name)?;
            let mut txn = self.db.begin_write().map_err(StoreError::from)?;
            txn.open_table(def).map_err(StoreError::from)?;
            let mut in_txn = 0u64;
            loop {
                let Some(k) = read_part(&mut r, true).map_err(|e| damaged(e.to_string()))? else {
                    break;
                };
                let v = read_part(&mut r, false)
                    .map_err(|e| damaged(e.to_string()))?
                    .unwrap_or_default();
                {
                    let mut t = txn.open_table(def).map_err(StoreError::from)?;
                    t.insert(K::from_bytes(&k), V::from_bytes(&v))
                        .map_err(StoreError::from)?;
                }
                self.rows += 1;
                in_txn += 1;
                if in_txn == RESTORE_BATCH {
                    txn.commit().map_err(StoreError::from)?;
                    txn = self.db.begin_write().map_err(StoreError::from)?;
                    in_txn = 0;
                }
            }
            txn.commit().map_err(StoreError::from)?;
            Ok(())
        }
    }
    if path.exists() {
        return Err(StoreError::Restore {
            table: String::new(),
            what: format!("{} exists already", path.display()),
        }
        .into());
    }
    let db = Database::create(path).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    let mut v = In { db, open, rows: 0 };
    each_table(&mut v)?;
    let rows = v.rows;
    drop(v);
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::Redb(e.into()))?;
    Ok(rows)
}

/// One length-prefixed part; `None` at a clean end of the stream (only where a key
/// may start).
fn read_part(r: &mut dyn Read, may_end: bool) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..])? {
            0 if got == 0 && may_end => return Ok(None),
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream ends inside a row",
                ))
            }
            n => got += n,
        }
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_PART {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a row part of {len} bytes"),
        ));
    }
    let mut part = vec![0u8; len];
    r.read_exact(&mut part)?;
    Ok(Some(part))
}
