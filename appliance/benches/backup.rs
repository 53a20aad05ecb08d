//! Backups of a data directory of about 1 GiB of transcripts: create, a second
//! create of the unchanged appliance, verify reading every chunk, and restore, against
//! the baseline of `tar | zstd | age` of the same directories (and `age -d | zstd -d |
//! tar -x` back) in the same run.
//!
//! The data: `corpus` meetings (sealed envelopes of random bytes, as ciphertext is),
//! written through the store with the shapes ingest writes and sealed with their
//! meeting keys, as on a real appliance, until the database reaches the size asked
//! for. Each measurement is repeated and the median printed. Asserts nothing.
//!
//! usage: `cargo bench -p roomscribe-appliance --bench backup` (Debian's `zstd` and
//! `age`; `BENCH_BACKUP_MIB` sets the size, default 1024; `BENCH_BACKUP_RUNS`, default 3)

#[path = "corpus/mod.rs"]
mod corpus;

use rand_core::{OsRng, RngCore};
use roomscribe_appliance::backup::{
    own_files, BackupKey, CreateInfo, DirTarget, Repository, RestoreTo, Target,
};
use roomscribe_appliance::keyring::Keyring;
use roomscribe_appliance::store::Store;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Meetings until the database holds `mib` MiB; returns the store and how many.
fn fill(root: &Path, mib: u64) -> anyhow::Result<(Store, u64)> {
    let data = root.join("data");
    std::fs::create_dir_all(&data)?;
    let keys = Keyring::open(&root.join("data-keys"), &root.join("data-keys/master.key"))?;
    let store = Store::open(&data, Arc::new(keys))?;
    roomscribe_appliance::keys::ApplianceKeys::load_or_create(&data)?;
    let mut n = 0u64;
    while store.file_size() < mib << 20 {
        let id = format!("00000000-0000-4000-8000-{n:012}");
        store.write(|tx| {
            corpus::write_meeting(tx, &id, n, n * 1000 + 1, &|| {
                let mut env = vec![0u8; 4096];
                OsRng.fill_bytes(&mut env);
                env
            })
        })?;
        n += 1;
    }
    Ok((store, n))
}

fn dir_bytes(p: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let m = match e.metadata() {
            Ok(m) => m,
            Err(_) => continue,
        };
        total += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    total
}

fn sh(script: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let st = Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .status()?;
    anyhow::ensure!(st.success(), "{script}");
    Ok(t.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let mib: u64 = std::env::var("BENCH_BACKUP_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let runs: usize = std::env::var("BENCH_BACKUP_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let root =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()))?;
    let t = Instant::now();
    let (store, meetings) = fill(root.path(), mib)?;
    let size = store.file_size();
    println!(
        "data: {meetings} meetings, database {:.0} MiB, written in {:.0} s",
        size as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    let key = Arc::new(BackupKey::from_bytes(&[5u8; 32]));
    let files = own_files(&root.path().join("data"), None)?;
    let info = CreateInfo {
        now_ms: 0,
        schema_version: roomscribe_appliance::store::SCHEMA_VERSION,
        appliance_version: "bench".into(),
    };
    let (mut create, mut again, mut verify, mut restore) = (vec![], vec![], vec![], vec![]);
    let (mut stored, mut again_stored) = (0, 0);
    for r in 0..runs {
        let tdir = root.path().join(format!("target-{r}"));
        let target: Arc<dyn Target> = Arc::new(DirTarget::open(&tdir)?);
        let repo = Arc::new(Repository::init(target, key.clone(), 0)?);
        let mut seen = None;
        for (i, out) in [&mut create, &mut again].into_iter().enumerate() {
            let t = Instant::now();
            let (snap, keys) = store.keys().capture(|| {
                store
                    .snapshot()
                    .map_err(roomscribe_appliance::backup::BackupError::from)
            })?;
            let (m, s, _) = repo.create(&snap, &keys, &files, &info, seen.as_ref(), &|_| ())?;
            out.push(t.elapsed());
            seen = Some(s);
            if i == 0 {
                stored = dir_bytes(&tdir);
            } else {
                again_stored = m.stats.new_stored_bytes;
            }
        }
        let t = Instant::now();
        let report = repo.verify(None, true, seen.as_ref())?;
        verify.push(t.elapsed());
        anyhow::ensure!(report.problems.is_empty(), "{:?}", report.problems);
        let to = RestoreTo {
            data_dir: root.path().join(format!("restored-{r}")),
            key_dir: root.path().join(format!("restored-{r}-keys")),
            master_key_file: root.path().join("data-keys/master.key"),
            audit_key_file: None,
        };
        let t = Instant::now();
        repo.restore(None, &to, seen.as_ref())?;
        restore.push(t.elapsed());
        std::fs::remove_dir_all(&to.data_dir)?;
        std::fs::remove_dir_all(&to.key_dir)?;
        std::fs::remove_dir_all(&tdir)?;
    }
    // The baseline: tar | zstd | age, and back.
    let r = root.path().display().to_string();
    sh(&format!("age-keygen -o {r}/age.key 2>/dev/null"))?;
    let recipient = std::fs::read_to_string(format!("{r}/age.key"))?
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap_or_default();
    let (mut bcreate, mut bverify, mut brestore) = (vec![], vec![], vec![]);
    let mut bstored = 0;
    for _ in 0..runs {
        bcreate.push(sh(&format!(
            "tar -C {r} -cf - data data-keys | zstd -q -T0 -3 | age -r {recipient} > {r}/base.age"
        ))?);
        bstored = std::fs::metadata(format!("{r}/base.age"))?.len();
        bverify.push(sh(&format!(
            "age -d -i {r}/age.key {r}/base.age | zstd -q -d | tar -tf - > /dev/null"
        ))?);
        brestore.push(sh(&format!(
            "rm -rf {r}/b && mkdir {r}/b && age -d -i {r}/age.key {r}/base.age | zstd -q -d | tar -xf - -C {r}/b && sync -f {r}/b"
        ))?);
    }
    let mb = size as f64 / 1e6;
    let rate = |d: Duration| mb / d.as_secs_f64();
    let (c, a, v, rs) = (
        median(create),
        median(again),
        median(verify),
        median(restore),
    );
    let (bc, bv, br) = (median(bcreate), median(bverify), median(brestore));
    println!("{runs} runs each, medians; MB/s over the database's {mb:.0} MB");
    println!("| | roomscribe backup | tar \\| zstd -3 \\| age | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| create | {:.1} s, {:.0} MB/s | {:.1} s, {:.0} MB/s | {:.2}x |",
        c.as_secs_f64(),
        rate(c),
        bc.as_secs_f64(),
        rate(bc),
        bc.as_secs_f64() / c.as_secs_f64()
    );
    println!(
        "| verify reading everything | {:.1} s, {:.0} MB/s | {:.1} s, {:.0} MB/s | {:.2}x |",
        v.as_secs_f64(),
        rate(v),
        bv.as_secs_f64(),
        rate(bv),
        bv.as_secs_f64() / v.as_secs_f64()
    );
    println!(
        "| restore | {:.1} s, {:.0} MB/s | {:.1} s, {:.0} MB/s | {:.2}x |",
        rs.as_secs_f64(),
        rate(rs),
        br.as_secs_f64(),
        rate(br),
        br.as_secs_f64() / rs.as_secs_f64()
    );
    println!(
        "| stored, first | {:.0} MB | {:.0} MB | |",
        stored as f64 / 1e6,
        bstored as f64 / 1e6
    );
    println!(
        "| second, unchanged | {:.1} s, {:.3} MB stored | {:.0} MB again | |",
        a.as_secs_f64(),
        again_stored as f64 / 1e6,
        bstored as f64 / 1e6
    );
    Ok(())
}
