//! The audit log end to end: what a sign-in, a failed one and a refused request leave
//! behind; `roomscribe audit verify`, `export`, `public-key` on a running and on a
//! stopped appliance; and an export that someone edited, cut or verified against the
//! wrong key, named at the entry that was changed.

use roomscribe_tests::*;
use std::process::Command;

const PASSWORD: &str = "a long enough password";

/// `roomscribe audit verify --export FILE [--public-key KEY]`, offline: (success,
/// stdout, stderr).
fn verify_export(
    file: &std::path::Path,
    key: Option<&str>,
) -> anyhow::Result<(bool, String, String)> {
    let mut c = Command::new(bin("roomscribe"));
    c.args(["audit", "verify", "--export"]).arg(file);
    if let Some(k) = key {
        c.args(["--public-key", k]);
    }
    let out = c.output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_log_is_kept_verified_exported_and_tampering_is_named() -> anyhow::Result<()> {
    let logs = artifacts("audit");
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    let app = Appliance::start(&data, &logs)?;
    app.add_user("cora", PASSWORD, "compliance_officer")?;
    app.add_user("mel", PASSWORD, "member")?;

    assert!(Api::login(&app, "mel", "not mel's password").await.is_err());
    let mel = Api::login(&app, "mel", PASSWORD).await?;
    let (code, _) = mel.get("/users").await?;
    assert_eq!(code, 403);
    let cora = Api::login(&app, "cora", PASSWORD).await?;

    // The console's view of the log: newest first, filterable, with source address.
    let failed = cora.ok("/audit?action=login&outcome=failure").await?;
    let failed = failed.as_array().cloned().unwrap_or_default();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["actor"], "mel");
    assert_eq!(failed[0]["ip"], "127.0.0.1");
    let denied = cora.ok("/audit?action=permission.denied").await?;
    assert_eq!(denied[0]["actor"], "mel");
    assert_eq!(denied[0]["target"], "GET /api/v1/users");
    let v = cora.ok("/audit/verify").await?;
    assert_eq!(v["ok"], true, "{v}");

    // The CLI, through the running appliance's admin socket.
    let out = app.admin(&["audit", "verify"])?;
    assert!(out.starts_with("audit log intact"), "{out}");
    let key = app.admin(&["audit", "public-key"])?.trim().to_owned();
    assert_eq!(key.len(), 64, "{key}");
    assert_eq!(cora.ok("/audit/public-key").await?["public_key"], key);
    let export = tmp.path().join("audit.jsonl");
    app.admin(&[
        "audit",
        "export",
        "--out",
        export.to_str().unwrap_or_default(),
    ])?;
    let (ok, out, err) = verify_export(&export, Some(&key))?;
    assert!(ok && out.starts_with("audit log intact"), "{out}{err}");

    // Hiding the failed sign-in: turn its outcome into a success.
    let text = std::fs::read_to_string(&export)?;
    let lines: Vec<&str> = text.lines().collect();
    let (idx, line) = lines
        .iter()
        .enumerate()
        .find(|(_, l)| l.contains(r#""action":"login""#) && l.contains(r#""outcome":"failure""#))
        .ok_or_else(|| anyhow::anyhow!("failed sign-in not exported"))?;
    let seq: u64 = line
        .split(r#""seq":"#)
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    edited[idx] = line.replace(r#""outcome":"failure""#, r#""outcome":"success""#);
    let forged = tmp.path().join("forged.jsonl");
    std::fs::write(&forged, edited.join("\n") + "\n")?;
    let (ok, _, err) = verify_export(&forged, Some(&key))?;
    assert!(!ok, "an edited entry must fail verification");
    let named = format!("entry {seq} (line {})", idx + 1);
    assert!(err.contains(&named), "names {named}: {err}");

    // Removing that line instead.
    let mut cut: Vec<&str> = lines.clone();
    cut.remove(idx);
    std::fs::write(&forged, cut.join("\n") + "\n")?;
    let (ok, _, err) = verify_export(&forged, Some(&key))?;
    assert!(
        !ok && err.contains(&format!("entry {seq} is missing")),
        "{err}"
    );

    // Another appliance's key does not vouch for this log.
    let other = Appliance::start(&tmp.path().join("other"), &logs)?;
    let other_key = other.admin(&["audit", "public-key"])?.trim().to_owned();
    drop(other);
    let (ok, _, err) = verify_export(&export, Some(&other_key))?;
    assert!(!ok && err.contains("another public key"), "{err}");
    // Without a key, the export's own is used, and the output says so.
    let (ok, _, err) = verify_export(&export, None)?;
    assert!(ok && err.contains("Compare it with"), "{err}");

    // Stopped: the CLI opens the data directory itself; shutdown sealed everything.
    drop(app);
    let out = Command::new(bin("roomscribe"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("audit log intact") && !text.contains("not yet sealed"),
        "shutdown seals the log: {text}"
    );
    Ok(())
}

/// Someone with the database file deletes the newest entries and their checkpoints:
/// the log alone cannot show it, but every checkpoint also went to the witness
/// directory (`audit.witness_dir`, on other storage), and `roomscribe audit verify
/// --witness DIR` finds the cut.
#[tokio::test(flavor = "multi_thread")]
async fn a_cut_off_tail_is_found_with_the_witness() -> anyhow::Result<()> {
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};
    let logs = artifacts("audit-witness");
    let tmp = tempfile::tempdir()?;
    let (data, witness) = (tmp.path().join("data"), tmp.path().join("witness"));
    std::fs::create_dir_all(&witness)?;
    let app = Appliance::start_with(
        &data,
        &logs,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &[
            ("ROOMSCRIBE_AUDIT_WITNESS_DIR", &witness.to_string_lossy()),
            ("ROOMSCRIBE_AUDIT_CHECKPOINT_EVERY_ENTRIES", "2"),
        ],
    )?;
    app.add_user("cora", PASSWORD, "compliance_officer")?;
    let cora = Api::login(&app, "cora", PASSWORD).await?;
    let (code, _) = cora.get("/users").await?;
    assert_eq!(code, 403);
    let out = app.admin(&["audit", "verify"])?;
    assert!(out.starts_with("audit log intact"), "{out}");
    drop(cora);
    drop(app); // shutdown seals the log: the witness holds the last checkpoint
    let witnessed = std::fs::read_to_string(witness.join("audit-checkpoints.jsonl"))?;
    assert!(
        witnessed.lines().count() >= 3,
        "every checkpoint reached the witness: {witnessed}"
    );
    let verify = |extra: &[&str]| -> anyhow::Result<(bool, String)> {
        let out = Command::new(bin("roomscribe"))
            .args(["audit", "verify", "--data-dir"])
            .arg(&data)
            .args(extra)
            .output()?;
        Ok((
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ))
    };
    let w = witness.to_string_lossy().into_owned();
    let (ok, text) = verify(&["--witness", &w])?;
    assert!(ok && text.contains("audit log intact"), "{text}");

    // The attacker's edit: the newest entries and their checkpoints go.
    {
        const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
        const CHECKPOINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_checkpoints");
        let db = redb::Database::create(data.join("roomscribe.redb"))?;
        let head = {
            let r = db.begin_read()?;
            let t = r.open_table(AUDIT)?;
            let last = t.last()?.map(|(k, _)| k.value()).unwrap_or(0);
            last
        };
        let w = db.begin_write()?;
        {
            let mut entries = w.open_table(AUDIT)?;
            let mut cps = w.open_table(CHECKPOINTS)?;
            for seq in head - 2..=head {
                entries.remove(seq)?;
                cps.remove(seq)?;
            }
        }
        w.commit()?;
    }
    let (ok, text) = verify(&[])?;
    assert!(ok, "the log alone cannot show the cut: {text}");
    let (ok, text) = verify(&["--witness", &w])?;
    assert!(!ok && text.contains("entries were removed"), "{text}");
    Ok(())
}
