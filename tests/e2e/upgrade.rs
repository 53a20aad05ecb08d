//! Upgrading keeps the data: this build started on a data directory the first release
//! wrote (storage schema 1, before roles and teams; `tests/fixtures/schema1-data.tar.gz`,
//! made by `tests/fixtures/make-schema1-fixture.sh` with that release's binaries)
//! migrates it at start: the old user signs in with the old password, its `user` role is
//! now `member`, the meeting and its transcript are there, in the team "Everyone", and
//! its room too; its content is sealed and no plaintext of it is left in the database
//! file; a second start changes nothing. (A failed migration and a database
//! from a newer build: `appliance/src/store/tests.rs`.)

use roomscribe_tests::*;
use std::process::Command;

fn unpack_fixture(into: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let fixture = repo_root().join("tests/fixtures/schema1-data.tar.gz");
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&fixture)
        .arg("-C")
        .arg(into)
        .status()?;
    anyhow::ensure!(status.success(), "unpacking {}", fixture.display());
    Ok(into.join("data"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_release_data_directory_is_migrated_at_start() -> anyhow::Result<()> {
    let logs = artifacts("upgrade");
    let tmp = tempfile::tempdir()?;
    let data = unpack_fixture(tmp.path())?;
    let db = std::fs::read(data.join("roomscribe.redb"))?;

    let app = Appliance::start(&data, &logs)?;
    assert!(
        app.bootstrap_password.is_none(),
        "the old users are still there"
    );
    let stderr = std::fs::read_to_string(logs.join("appliance.stderr"))?;
    assert!(
        stderr.contains("storage migrated from schema 1 to 2"),
        "{stderr}"
    );

    let clerk = Api::login(&app, "clerk", "clerk-passphrase-0001").await?;
    let me = clerk.ok("/me").await?;
    assert_eq!(me["teams"], serde_json::json!(["Everyone"]), "{me}");
    let meetings = clerk.ok("/meetings").await?;
    let list = meetings.as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 1, "{meetings}");
    assert_eq!(list[0]["title"], "Ward round before the upgrade");
    assert_eq!(list[0]["status"], "ended");
    let id = list[0]["id"].as_str().unwrap_or_default();
    let t = clerk.ok(&format!("/meetings/{id}/transcript")).await?;
    let segments = t["segments"].as_array().cloned().unwrap_or_default();
    assert!(!segments.is_empty(), "{t}");
    assert!(segments
        .iter()
        .all(|s| !s["text"].as_str().unwrap_or_default().is_empty()));

    // An administrator added by this build sees the migrated directory.
    app.add_user_in(
        "it-admin",
        "a new administrator's passphrase",
        "admin",
        "Everyone",
    )?;
    let admin = Api::login(&app, "it-admin", "a new administrator's passphrase").await?;
    let users = admin.ok("/users").await?;
    let clerk_view = users
        .as_array()
        .and_then(|u| u.iter().find(|u| u["username"] == "clerk"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(clerk_view["grants"][0]["role"], "member", "{clerk_view}");
    let rooms = admin.ok("/rooms").await?;
    assert!(rooms.to_string().contains("Ward 4"), "{rooms}");
    let verified = admin.ok("/audit/verify").await?;
    assert_eq!(verified["ok"], true, "{verified}");
    drop(app);
    let migrated = std::fs::read(data.join("roomscribe.redb"))?;
    assert_ne!(migrated, db, "migrated");
    // Meeting content is sealed with the meeting's key now, and the file was copied
    // afresh: the old plaintext is not left behind in free pages.
    for plain in [
        "Ward round before the upgrade".as_bytes(),
        segments[0]["text"].as_str().unwrap_or_default().as_bytes(),
    ] {
        assert!(
            db.windows(plain.len()).any(|w| w == plain),
            "the fixture holds it"
        );
        assert!(
            !migrated.windows(plain.len()).any(|w| w == plain),
            "plaintext left after the migration"
        );
    }

    // Started again: no second migration, same data.
    let _ = std::fs::remove_file(logs.join("appliance.stderr"));
    let app = Appliance::start(&data, &logs)?;
    let stderr = std::fs::read_to_string(logs.join("appliance.stderr"))?;
    assert!(!stderr.contains("storage migrated"), "{stderr}");
    let clerk = Api::login(&app, "clerk", "clerk-passphrase-0001").await?;
    assert_eq!(
        clerk.ok("/meetings").await?.as_array().map(Vec::len),
        Some(1)
    );
    Ok(())
}
