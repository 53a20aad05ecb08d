//! Encryption at rest and erasure that reaches old copies (docs/ARCHITECTURE.md,
//! "Keys and erasure"), with the real appliance and agent:
//! - two recorded meetings, given canary strings through the API (title, tag,
//!   participant, speaker name, a corrected segment) besides their own spoken words,
//!   read, search and export normally; stopped, no file under the data directory —
//!   nor the appliance's log — holds any canary, in UTF-8 or UTF-16;
//! - a copy of the data directory taken while stopped (what a backup holds), then the
//!   meeting erased, then the old copy put back and started with the same key
//!   directory: the erased meeting cannot be read, searched or exported, the other
//!   one can, and the restart is audited; the master key is rotated on the way
//!   (`roomscribe keys rotate`) and everything still reads after it;
//! - a subject access export (`roomscribe subject export`) of a participant, read
//!   with unzip and checked offline by `roomscribe export verify`;
//! - a subject's erasure request (`roomscribe subject erase`): the segment they spoke
//!   (and its corrections) and their name are gone, the rest of the meeting reads;
//!   no canary is left at rest; and the copy taken before the erasure, put back,
//!   holds that meeting under a destroyed key, so it is removed whole.

use roomscribe_tests::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const PASSWORD: &str = "a long enough password";

/// The files under `root` (a directory, or one file) holding any of `canaries`
/// (UTF-8, UTF-16LE or UTF-16BE): (files scanned, bytes scanned, hits as "file: canary").
fn scan(root: &Path, canaries: &[String]) -> anyhow::Result<(usize, u64, Vec<String>)> {
    let needles: Vec<(String, Vec<Vec<u8>>)> = canaries
        .iter()
        .map(|c| {
            let le = c.encode_utf16().flat_map(u16::to_le_bytes).collect();
            let be = c.encode_utf16().flat_map(u16::to_be_bytes).collect();
            (c.clone(), vec![c.as_bytes().to_vec(), le, be])
        })
        .collect();
    let (mut files, mut bytes, mut hits) = (0, 0u64, vec![]);
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        let entries: Vec<PathBuf> = if d.is_dir() {
            std::fs::read_dir(&d)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?
        } else {
            vec![d]
        };
        for p in entries {
            let meta = std::fs::symlink_metadata(&p)?;
            if meta.is_dir() {
                stack.push(p);
                continue;
            }
            if !meta.is_file() {
                continue; // the admin socket
            }
            let b = std::fs::read(&p)?;
            files += 1;
            bytes += b.len() as u64;
            for (c, forms) in &needles {
                if forms
                    .iter()
                    .any(|n| b.windows(n.len()).any(|w| w == n.as_slice()))
                {
                    hits.push(format!("{}: {c}", p.display()));
                }
            }
        }
    }
    Ok((files, bytes, hits))
}

/// Search hits for `q`, once the index (built in memory at start) is open.
async fn hits(api: &Api, q: &str) -> anyhow::Result<Vec<Value>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (code, v) = api.get(&format!("/search?q={q}&limit=100")).await?;
        if code == 200 {
            return Ok(v["hits"].as_array().cloned().unwrap_or_default());
        }
        anyhow::ensure!(
            code == 503 && std::time::Instant::now() < deadline,
            "search: {code} {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Records a meeting titled `title` in `room`; its id.
async fn record(
    app: &Appliance,
    admin: &Api,
    tmp: &Path,
    logs: &Path,
    room: &str,
    title: &str,
) -> anyhow::Result<String> {
    record_sentences(app, admin, tmp, logs, room, title, 1).await
}

async fn record_sentences(
    app: &Appliance,
    admin: &Api,
    tmp: &Path,
    logs: &Path,
    room: &str,
    title: &str,
    sentences: usize,
) -> anyhow::Result<String> {
    let state = tmp.join(room);
    app.enroll_agent(&state, room)?;
    let wav = sample_wav(tmp, &format!("{room}.wav"), sentences)?;
    record_file(&state, logs, room, &wav, title)?;
    let meetings = admin.ok("/meetings").await?;
    meetings
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["title"] == title))
        .and_then(|m| m["id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("meeting {title} not stored: {meetings}"))
}

/// Gives meeting `id` canaries through the API (title, tag, participant, speaker
/// name, a corrected segment); returns them with its segments' spoken texts.
async fn mark(api: &Api, id: &str, tag: &str) -> anyhow::Result<Vec<String>> {
    let title = format!("Canarytitle{tag}");
    let label = format!("canarytag{tag}");
    let person = format!("Canaryperson{tag}");
    let speaker = format!("Canaryspeaker{tag}");
    let word = format!("canaryword{tag}");
    let voice = format!("canaryvoice{tag}");
    let (code, v) = api
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/meetings/{id}"),
            Some(&json!({"title": title, "tags": [label], "participants": [{"name": person}]})),
        )
        .await?;
    anyhow::ensure!(code == 200, "edit: {code} {v}");
    let t = api.ok(&format!("/meetings/{id}/transcript")).await?;
    let segments = t["segments"].as_array().cloned().unwrap_or_default();
    anyhow::ensure!(!segments.is_empty(), "{t}");
    let spoken: Vec<String> = segments
        .iter()
        .filter_map(|s| s["text"].as_str())
        .filter(|s| s.chars().count() >= 6)
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(!spoken.is_empty(), "no spoken text long enough: {t}");
    // A correction of text and speaker, then a name for that speaker.
    let (code, v) = api
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/meetings/{id}/segments/0"),
            Some(&json!({
                "text": format!("{} {word}", spoken[0]),
                "speaker": voice,
                "expected_version": 0
            })),
        )
        .await?;
    anyhow::ensure!(code == 200, "correct: {code} {v}");
    let (code, v) = api
        .post(
            &format!("/meetings/{id}/speakers"),
            json!({"speaker": voice, "name": speaker}),
        )
        .await?;
    anyhow::ensure!(code.is_success(), "speaker: {code} {v}");
    let mut all = vec![title, label, person, speaker, word, voice];
    all.extend(spoken);
    Ok(all)
}

fn report(what: &str, dir: &Path, canaries: &[String]) -> anyhow::Result<()> {
    let (files, bytes, hits) = scan(dir, canaries)?;
    println!(
        "canary scan ({what}): {} canaries, {files} files, {bytes} bytes scanned, {} hits",
        canaries.len(),
        hits.len()
    );
    assert!(files > 0 && bytes > 0);
    assert!(hits.is_empty(), "plaintext at rest: {hits:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn no_canary_is_at_rest_and_an_erased_meeting_stays_gone_from_an_old_copy(
) -> anyhow::Result<()> {
    let logs = artifacts("encryption");
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    let keys: PathBuf = tmp.path().join("data-keys");
    let app = Appliance::start(&data, &logs)?;
    app.add_user("ada", PASSWORD, "admin")?;
    let admin = Api::login(&app, "ada", PASSWORD).await?;
    let gone = record(&app, &admin, tmp.path(), &logs, "north", "North weekly").await?;
    let kept = record(&app, &admin, tmp.path(), &logs, "south", "South weekly").await?;
    let gone_canaries = mark(&admin, &gone, "Q7XA").await?;
    let kept_canaries = mark(&admin, &kept, "Q7XB").await?;
    let all: Vec<String> = gone_canaries
        .iter()
        .chain(&kept_canaries)
        .cloned()
        .collect();

    // Everything reads, searches and exports as usual.
    for (id, tag) in [(&gone, "Q7XA"), (&kept, "Q7XB")] {
        let t = admin.ok(&format!("/meetings/{id}/transcript")).await?;
        assert!(t.to_string().contains(&format!("canaryword{tag}")), "{t}");
        let found = hits(&admin, &format!("canaryword{tag}")).await?;
        assert_eq!(found.len(), 1, "{found:?}");
        let srt = admin
            .download(&format!("/meetings/{id}/export?format=srt"))
            .await?;
        assert!(String::from_utf8_lossy(&srt).contains(&format!("canaryword{tag}")));
    }
    drop(app);
    assert!(keys.join("meetings").join(format!("{gone}.key")).exists());
    report("data directory", &data, &all)?;
    report("appliance log", &logs.join("appliance.stderr"), &all)?;

    // What a backup of the data directory holds, taken while stopped.
    let old = tmp.path().join("data-before-erasure");
    copy_dir(&data, &old)?;

    let app = Appliance::start(&data, &logs)?;
    let admin = Api::login(&app, "ada", PASSWORD).await?;
    let (code, v) = admin
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/meetings/{gone}"),
            Some(&json!({"reason": "the data subject asked (ticket 31)"})),
        )
        .await?;
    assert_eq!(code, 200, "{v}");
    assert!(!keys.join("meetings").join(format!("{gone}.key")).exists());
    // The master key changes; meeting keys are re-wrapped, content untouched.
    let rotated = app.admin(&["keys", "rotate"])?;
    assert!(rotated.contains("1 meeting keys re-wrapped"), "{rotated}");
    drop(app);

    // The disk is restored from the old copy; the key directory is this appliance's.
    std::fs::rename(&data, tmp.path().join("data-after-erasure"))?;
    std::fs::rename(&old, &data)?;
    let app = Appliance::start(&data, &logs)?;
    let admin = Api::login(&app, "ada", PASSWORD).await?;
    for path in [
        format!("/meetings/{gone}/transcript"),
        format!("/meetings/{gone}/export?format=srt"),
    ] {
        let (code, v) = admin.get(&path).await?;
        assert_eq!(code, 404, "{path}: {v}");
    }
    assert!(hits(&admin, "canarywordQ7XA").await?.is_empty());
    let list = admin.ok("/meetings").await?;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], kept.as_str());
    let t = admin.ok(&format!("/meetings/{kept}/transcript")).await?;
    assert!(t.to_string().contains("canarywordQ7XB"), "{t}");
    assert_eq!(hits(&admin, "canarywordQ7XB").await?.len(), 1);
    let audit = admin.ok("/audit?action=meeting.erase_replayed").await?;
    assert!(audit.to_string().contains(&gone), "{audit}");
    let status = app.admin(&["keys", "status"])?;
    assert!(
        status.contains("1 meeting keys, 1 erasures on record"),
        "{status}"
    );

    // A subject access request: the kept meeting's participant gets it whole, the
    // erased one's participant gets nothing; the archive verifies offline, and a
    // changed byte does not.
    subject_access(&app, tmp.path(), &kept).await?;
    drop(app);
    report("restored old copy", &data, &all)?;
    println!("erased meeting {gone} stayed gone from a copy of the data directory taken before its erasure");
    Ok(())
}

/// `roomscribe subject export` for a participant of `kept` (and one of the erased
/// meeting), read with unzip and checked with `roomscribe export verify`.
async fn subject_access(app: &Appliance, dir: &Path, kept: &str) -> anyhow::Result<()> {
    let out = dir.join("subject.zip");
    let said = app.admin(&[
        "subject",
        "export",
        "--name",
        "canarypersonq7xb",
        "--user",
        "ada",
        "--out",
        &out.to_string_lossy(),
    ])?;
    assert!(said.contains("1 meeting(s)"), "{said}");
    let unzip = |name: &str| -> anyhow::Result<String> {
        let o = std::process::Command::new("unzip")
            .arg("-p")
            .arg(&out)
            .arg(name)
            .output()?;
        anyhow::ensure!(o.status.success(), "unzip {name}");
        Ok(String::from_utf8(o.stdout)?)
    };
    let report: Value = serde_json::from_str(&unzip("subject.json")?)?;
    assert_eq!(report["kind"], "roomscribe.subject-access");
    let meetings = report["meetings"].as_array().cloned().unwrap_or_default();
    assert_eq!(meetings.len(), 1, "{report}");
    assert_eq!(meetings[0]["meeting"]["id"], kept);
    assert_eq!(meetings[0]["reasons"], json!(["participant"]));
    let texts = meetings[0]["segments"].to_string();
    assert!(texts.contains("canarywordQ7XB"), "{texts}");
    // Their account's audit entries: the sign-ins of `ada` are among them.
    assert!(report["audit_entries"].as_array().is_some_and(|a| a
        .iter()
        .any(|e| e["action"] == "login" && e["actor"] == "ada")));
    let html = unzip("subject.html")?;
    assert!(html.contains("canarywordQ7XB") && html.contains("CanarytitleQ7XB"));
    let manifest = format!("{}.manifest.json", out.display());
    let key = app.admin(&["audit", "public-key"])?;
    let verify = |file: &Path| {
        std::process::Command::new(bin("roomscribe"))
            .args(["export", "verify"])
            .arg(file)
            .args([manifest.as_str(), "--public-key", key.trim()])
            .output()
    };
    let ok = verify(&out)?;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("OK: "));
    let mut bytes = std::fs::read(&out)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    let flipped = dir.join("subject-flipped.zip");
    std::fs::write(&flipped, bytes)?;
    assert!(
        !verify(&flipped)?.status.success(),
        "one flipped bit is caught"
    );
    // The erased meeting's participant: nothing is held about them any more.
    let none = app.admin(&[
        "subject",
        "export",
        "--name",
        "CanarypersonQ7XA",
        "--out",
        &dir.join("none.zip").to_string_lossy(),
    ])?;
    assert!(none.contains("0 meeting(s), 0 segment(s)"), "{none}");
    println!("subject access: {said}");
    Ok(())
}

/// A data subject's erasure request: what they said goes from every copy that the
/// appliance can still read, and an older copy cannot bring it back.
#[tokio::test(flavor = "multi_thread")]
async fn a_subjects_erasure_request_erases_what_they_said_and_an_old_copy_loses_it_too(
) -> anyhow::Result<()> {
    let logs = artifacts("subject-erase");
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    let app = Appliance::start(&data, &logs)?;
    app.add_user("ada", PASSWORD, "admin")?;
    let admin = Api::login(&app, "ada", PASSWORD).await?;
    let id = record_sentences(&app, &admin, tmp.path(), &logs, "east", "East", 3).await?;
    let before = admin.ok(&format!("/meetings/{id}/transcript")).await?;
    let segments = before["segments"].as_array().cloned().unwrap_or_default();
    assert!(segments.len() >= 2, "{before}");
    // Segment 0 becomes theirs (a speaker named after them) with a canary word in a
    // correction; they and someone else take part.
    let (person, word) = ("Canarypersonz9", "canarywordz9");
    let spoken0 = segments[0]["text"].as_str().unwrap_or_default().to_owned();
    let (code, v) = admin
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/meetings/{id}/segments/0"),
            Some(&json!({"text": format!("{spoken0} {word}"), "speaker": "voicez9", "expected_version": 0})),
        )
        .await?;
    assert_eq!(code, 200, "{v}");
    let (code, v) = admin
        .post(
            &format!("/meetings/{id}/speakers"),
            json!({"speaker": "voicez9", "name": person}),
        )
        .await?;
    assert!(code.is_success(), "{v}");
    let (code, v) = admin
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/meetings/{id}"),
            Some(&json!({"participants": [{"name": person}, {"name": "Someone Else"}]})),
        )
        .await?;
    assert_eq!(code, 200, "{v}");
    assert_eq!(hits(&admin, word).await?.len(), 1);
    drop(app);
    let old = tmp.path().join("data-before");
    copy_dir(&data, &old)?;

    let app = Appliance::start(&data, &logs)?;
    let admin = Api::login(&app, "ada", PASSWORD).await?;
    let said = app.admin(&[
        "subject",
        "erase",
        "--name",
        &person.to_lowercase(),
        "--reason",
        "erasure request 17",
    ])?;
    assert!(
        said.contains("1 segment(s) erased from 1 meeting(s)"),
        "{said}"
    );
    let after = admin.ok(&format!("/meetings/{id}/transcript")).await?;
    let left = after["segments"].as_array().cloned().unwrap_or_default();
    assert_eq!(left.len(), segments.len() - 1, "{after}");
    assert!(left.iter().all(|s| s["seq"] != 0), "{after}");
    assert_eq!(
        left[0]["text"], segments[1]["text"],
        "the rest reads: {after}"
    );
    let m = &after["meeting"];
    assert_eq!(
        m["participants"],
        json!([{"name": "Someone Else", "username": null}]),
        "{m}"
    );
    assert!(!m["speaker_names"].to_string().contains(person), "{m}");
    assert!(hits(&admin, word).await?.is_empty(), "gone from search");
    let (code, _) = admin
        .get(&format!("/meetings/{id}/segments/0/history"))
        .await?;
    assert_eq!(code, 404, "its corrections are gone");
    let erased = admin.ok("/audit?action=meeting.erase_segments").await?;
    assert!(
        erased.to_string().contains("1 segment(s) erased"),
        "{erased}"
    );
    let request = admin.ok("/audit?action=subject.erase").await?;
    assert!(
        !request
            .to_string()
            .to_lowercase()
            .contains(&person.to_lowercase()),
        "{request}"
    );
    // Asked again: nothing left to erase.
    let again = app.admin(&["subject", "erase", "--name", person, "--reason", "again"])?;
    assert!(
        again.contains("0 segment(s) erased from 0 meeting(s)"),
        "{again}"
    );
    drop(app);
    let canaries = [person.to_owned(), word.to_owned()];
    let (files, bytes, found) = scan(&data, &canaries)?;
    println!(
        "subject erasure canary scan: {files} files, {bytes} bytes, {} hits",
        found.len()
    );
    assert!(found.is_empty(), "{found:?}");

    // The copy from before the erasure, put back: that meeting is sealed under the
    // key the erasure destroyed, so it is removed whole, and the removal audited.
    std::fs::rename(&data, tmp.path().join("data-after"))?;
    std::fs::rename(&old, &data)?;
    let app = Appliance::start(&data, &logs)?;
    let admin = Api::login(&app, "ada", PASSWORD).await?;
    let (code, v) = admin.get(&format!("/meetings/{id}/transcript")).await?;
    assert_eq!(code, 404, "{v}");
    assert!(hits(&admin, word).await?.is_empty());
    let replayed = admin.ok("/audit?action=meeting.erase_replayed").await?;
    assert!(
        replayed
            .to_string()
            .contains("before 1 of its segments were erased"),
        "{replayed}"
    );
    Ok(())
}
