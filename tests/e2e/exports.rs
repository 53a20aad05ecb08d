//! A real meeting's transcript, corrected through the API and exported in every
//! format, read back by parsers nobody here wrote (PyPI's srt, webvtt-py and
//! python-docx, Python's csv, Debian's chromium for the HTML, poppler for the PDF), and each file checked against its signed
//! manifest by `roomscribe export verify` — which also catches one changed byte.
//! Called from the transcript test, which has the meeting.

use roomscribe_tests::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

pub async fn corrected_and_read_back(
    api: &Api,
    exporter: &Api,
    admin_key: &str,
    t: &Value,
    dir: &Path,
) -> anyhow::Result<()> {
    let id = t["meeting"]["id"].as_str().unwrap_or_default();
    let segments = t["segments"].as_array().cloned().unwrap_or_default();
    anyhow::ensure!(segments.len() >= 2, "{t}");
    // Correct segment 1 through the API; a second correction of the same version is
    // refused with 409, and bad input with 422.
    let original = segments[1]["text"].as_str().unwrap_or_default().to_owned();
    let corrected = format!("{original} 확인했습니다");
    let path = format!("/meetings/{id}/segments/1");
    let (code, v) = api
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1{path}"),
            Some(&json!({"text": corrected, "expected_version": 0})),
        )
        .await?;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["version"].as_u64(), v["edited"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(v["end"], segments[1]["end"], "the time span stays");
    let (code, v) = api
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1{path}"),
            Some(&json!({"text": "late", "expected_version": 0})),
        )
        .await?;
    assert_eq!(code, 409, "{v}");
    let (code, v) = api
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1{path}"),
            Some(&json!({"text": "", "expected_version": 1})),
        )
        .await?;
    assert_eq!(code, 422, "{v}");
    let h = api.ok(&format!("{path}/history")).await?;
    assert_eq!(h["original"]["text"], original.as_str(), "{h}");
    assert_eq!(h["original"]["signature"]["status"], "verified", "{h}");
    assert_eq!(h["revisions"].as_array().map(Vec::len), Some(1), "{h}");

    let now = api.ok(&format!("/meetings/{id}/transcript")).await?;
    let segs = now["segments"].as_array().cloned().unwrap_or_default();
    let texts: Vec<&str> = segs
        .iter()
        .map(|s| s["text"].as_str().unwrap_or_default())
        .collect();
    let ms = |v: &Value| (v.as_f64().unwrap_or_default() * 1000.0).round() as i64;

    let mut files = vec![];
    for format in ["srt", "vtt", "csv", "docx", "html", "pdf", "txt", "json"] {
        // SRT has no comments to carry originals in (422, below); the rest carry them.
        let q = if format == "srt" {
            format!("/meetings/{id}/export?format=srt")
        } else {
            format!("/meetings/{id}/export?format={format}&original=1")
        };
        let body = exporter.download(&q).await?;
        let manifest = exporter.download(&format!("{q}&manifest=1")).await?;
        let file = dir.join(format!("export.{format}"));
        std::fs::write(&file, &body)?;
        std::fs::write(
            dir.join(format!("export.{format}.manifest.json")),
            &manifest,
        )?;
        files.push((format, file, body));
    }

    let (code, v) = exporter
        .get(&format!("/meetings/{id}/export?format=srt&original=1"))
        .await?;
    assert_eq!(code, 422, "{v}");
    let vtt_text = String::from_utf8_lossy(&files[1].2);
    assert!(
        vtt_text.contains(&format!("NOTE corrected; original: {original}\n\n2\n")),
        "the corrected cue is marked in a comment: {vtt_text}"
    );

    // Subtitles and CSV, read by PyPI's srt and webvtt-py and Python's csv module.
    let out = Command::new(cache_dir().join("venv/bin/python"))
        .arg(repo_root().join("tests/reference/read_exports.py"))
        .args(files[..4].iter().map(|(_, f, _)| f))
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "read_exports.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout)?;
    let srt = read["srt"].as_array().cloned().unwrap_or_default();
    let vtt = read["vtt"].as_array().cloned().unwrap_or_default();
    assert_eq!((srt.len(), vtt.len()), (segs.len(), segs.len()), "{read}");
    for (i, s) in segs.iter().enumerate() {
        let (start, end) = (ms(&s["start"]), ms(&s["end"]).max(ms(&s["start"]) + 1));
        assert_eq!(
            (srt[i][0].as_i64(), srt[i][1].as_i64()),
            (Some(start), Some(end)),
            "{read}"
        );
        assert_eq!(
            srt[i][2],
            format!("unknown: {}", texts[i]).as_str(),
            "{read}"
        );
        assert_eq!(
            (vtt[i][0].as_i64(), vtt[i][1].as_i64()),
            (Some(start), Some(end)),
            "{read}"
        );
        assert_eq!(
            (vtt[i][2].as_str(), vtt[i][3].as_str()),
            (Some("unknown"), Some(texts[i]))
        );
    }
    let header = read["csv"]["header"].clone();
    assert_eq!(
        header,
        json!([
            "start",
            "end",
            "speaker",
            "text",
            "confidence",
            "edited",
            "original"
        ])
    );
    let rows = read["csv"]["rows"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), segs.len());
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[3], texts[i], "{r}");
        assert_eq!(r[5], if i == 1 { "true" } else { "false" }, "{r}");
        assert_eq!(r[6], if i == 1 { original.as_str() } else { "" }, "{r}");
    }

    // The HTML page as a browser builds it: one list item per segment, in order.
    // The Word document as PyPI's python-docx reads it: the title, then one
    // paragraph per segment (time, speaker, text, the correction marked) with the
    // original after the corrected one, and "page N of M" fields in the footer.
    let paragraphs: Vec<&str> = read["docx"]["paragraphs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str())
        .collect();
    assert_eq!(
        paragraphs.first().copied(),
        now["meeting"]["title"].as_str(),
        "{paragraphs:?}"
    );
    let spoken: Vec<&str> = paragraphs
        .iter()
        .copied()
        .filter(|p| p.contains("  unknown: "))
        .collect();
    assert_eq!(spoken.len(), segs.len(), "{paragraphs:?}");
    for (i, p) in spoken.iter().enumerate() {
        assert!(p.contains(&format!("unknown: {}", texts[i])), "{p}");
        assert_eq!(p.ends_with(" (corrected)"), i == 1, "{p}");
    }
    assert!(
        paragraphs.contains(&format!("Original: {original}").as_str()),
        "{paragraphs:?}"
    );
    let footer = read["docx"]["footer_xml"].as_str().unwrap_or_default();
    assert!(
        footer.contains(" PAGE ") && footer.contains(" NUMPAGES "),
        "{footer}"
    );

    let html = &files[4].1;
    let dom = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", html.display()))
        .output()?;
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("<li data-seq=").count(), segs.len(), "{dom}");
    for (i, text) in texts.iter().enumerate() {
        let at = dom
            .find(&format!("<li data-seq=\"{i}\">"))
            .unwrap_or(usize::MAX);
        let item = dom.get(at..).unwrap_or_default();
        assert!(item.contains(text), "segment {i} in the page");
    }
    assert!(dom.contains(&format!("Original: {original}")), "{dom}");

    // The PDF as poppler reads it: every word of every segment, in order, with the
    // font embedded, and "page N of M" on each page.
    let pdf = &files[5].1;
    let text = Command::new("pdftotext").arg(pdf).arg("-").output()?;
    anyhow::ensure!(
        text.status.success(),
        "pdftotext: {}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = String::from_utf8_lossy(&text.stdout);
    let extracted: Vec<&str> = text.split_whitespace().collect();
    let mut at = 0;
    for word in texts.iter().flat_map(|t| t.split_whitespace()) {
        let found = extracted[at..].iter().position(|w| *w == word);
        assert!(
            found.is_some(),
            "{word:?} missing after word {at} of the PDF's text:\n{text}"
        );
        at += found.unwrap_or_default() + 1;
    }
    assert!(
        text.contains(&format!("Original: {original}")) || text.contains("Original:"),
        "{text}"
    );
    let info = Command::new("pdfinfo").arg(pdf).output()?;
    let info = String::from_utf8_lossy(&info.stdout);
    let pages = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or_default();
    assert!(pages >= 1, "{info}");
    assert!(text.contains(&format!("page {pages} of {pages}")), "{text}");
    let fonts = Command::new("pdffonts").arg(pdf).output()?;
    let fonts = String::from_utf8_lossy(&fonts.stdout);
    assert!(
        fonts.lines().skip(2).all(|l| l.contains(" yes yes yes ")) && fonts.contains("NanumGothic"),
        "every font embedded, as a subset, with a Unicode map: {fonts}"
    );

    // Every file verifies against its manifest with the appliance's key, offline;
    // one changed byte is caught and named.
    for (format, file, body) in &files {
        let manifest = dir.join(format!("export.{format}.manifest.json"));
        let ok = Command::new(bin("roomscribe"))
            .args(["export", "verify"])
            .arg(file)
            .arg(&manifest)
            .args(["--public-key", admin_key])
            .output()?;
        assert!(
            ok.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let mut changed = body.clone();
        let at = changed.len() / 2;
        changed[at] = changed[at].wrapping_add(1);
        let bad = dir.join(format!("changed.{format}"));
        std::fs::write(&bad, &changed)?;
        let refused = Command::new(bin("roomscribe"))
            .args(["export", "verify"])
            .arg(&bad)
            .arg(&manifest)
            .args(["--public-key", admin_key])
            .output()?;
        let why = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && why.contains("SHA-256"),
            "{format}: {why}"
        );
    }

    // The console's way: made in the background, polled until ready, then the file
    // and the manifest signed for those very bytes. The same file as at once; the
    // job is its starter's alone.
    let (code, job) = exporter
        .post(
            &format!("/meetings/{id}/exports"),
            json!({"format": "csv", "original": true}),
        )
        .await?;
    assert_eq!(code, 202, "{job}");
    let job_id = job["id"].as_str().unwrap_or_default().to_owned();
    let mut seen = vec![];
    let ready = loop {
        let v = exporter.ok(&format!("/exports/{job_id}")).await?;
        seen.push(v["progress"].as_u64().unwrap_or(0));
        match v["state"].as_str() {
            Some("running") => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            Some("ready") => break v,
            _ => anyhow::bail!("the background export did not finish: {v}"),
        }
    };
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(ready["progress"], 100, "{ready}");
    let from_job = exporter
        .download(&format!("/exports/{job_id}/file"))
        .await?;
    let (_, _, at_once) = files
        .iter()
        .find(|(f, _, _)| *f == "csv")
        .ok_or_else(|| anyhow::anyhow!("no csv"))?;
    assert_eq!(
        &from_job, at_once,
        "the same transcript gives the same bytes"
    );
    assert_eq!(ready["size"].as_u64(), Some(from_job.len() as u64));
    let job_file = dir.join("job.csv");
    std::fs::write(&job_file, &from_job)?;
    let job_manifest = dir.join("job.csv.manifest.json");
    std::fs::write(
        &job_manifest,
        exporter
            .download(&format!("/exports/{job_id}/manifest"))
            .await?,
    )?;
    let ok = Command::new(bin("roomscribe"))
        .args(["export", "verify"])
        .arg(&job_file)
        .arg(&job_manifest)
        .args(["--public-key", admin_key])
        .output()?;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let (code, v) = api.get(&format!("/exports/{job_id}/file")).await?;
    assert_eq!(code, 403, "a member may not export: {v}");
    let (code, v) = exporter
        .get("/exports/00000000-0000-4000-8000-000000000000")
        .await?;
    assert_eq!(code, 404, "{v}");
    println!("exports: {} formats read back and verified", files.len());
    Ok(())
}
