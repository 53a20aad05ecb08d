//! Search through the real services: what ingest stores is found, within the
//! caller's reach only, and edits show at once.

use super::*;
use crate::search::Sort;
use roomscribe_protocol::frame::AckStatus;

fn find(f: &Fixture, actor: &Actor, q: &str) -> SearchResults {
    f.search.flush();
    f.search
        .search(
            actor,
            &SearchRequest {
                q: q.into(),
                ..Default::default()
            },
        )
        .expect("search")
}

fn started(f: &Fixture) -> &Fixture {
    f.search.start().expect("index opens");
    f
}

#[test]
fn teams_bound_what_a_search_finds_counts_and_audits() {
    let f = fixture();
    started(&f);
    let admin = f.admin();
    let (a1, k1) = f.enroll_in("Ward 4", Some("Cardiology"));
    let (a2, k2) = f.enroll_in("Ward 9", Some("Oncology"));
    let (m1, m2) = (MeetingId::random(), MeetingId::random());
    let (w1, w2) = (f.hello(a1, &k1), f.hello(a2, &k2));
    for (i, text) in ["the warfarin dose stays", "check the warfarin levels"]
        .into_iter()
        .enumerate()
    {
        let e = f.envelope_saying(a1, &k1, m1, i as u64 + 1, i as u64, false, text);
        assert_eq!(f.ingest.accept_envelope(w1, &e), Ok(AckStatus::Stored));
    }
    let e = f.envelope_saying(
        a2,
        &k2,
        m2,
        1,
        0,
        false,
        "warfarin for the oncology patient",
    );
    assert_eq!(f.ingest.accept_envelope(w2, &e), Ok(AckStatus::Stored));
    let (cardiology, oncology) = (f.team_id("Cardiology"), f.team_id("Oncology"));
    f.user("cara", "member", std::slice::from_ref(&cardiology));
    f.user("otto", "member", std::slice::from_ref(&oncology));
    f.user("nobody", "member", &[]);
    let (cara, otto, nobody) = (f.actor("cara"), f.actor("otto"), f.actor("nobody"));

    let all = find(&f, &admin, "warfarin");
    assert_eq!(all.total, 3);
    let r = find(&f, &cara, "warfarin");
    assert_eq!(r.total, 2, "only Cardiology's meeting, in the count too");
    assert!(r.hits.iter().all(|h| h.meeting_id == m1.to_string()));
    assert_eq!(r.hits[0].room_name, "Ward 4");
    let r = find(&f, &otto, "warfarin");
    assert_eq!((r.total, r.hits.len()), (1, 1));
    assert_eq!(find(&f, &nobody, "warfarin").total, 0);
    // A filter cannot widen the reach.
    let r = f
        .search
        .search(
            &otto,
            &SearchRequest {
                q: "warfarin".into(),
                filters: crate::search::Filters {
                    team: Some(cardiology.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .expect("search");
    assert_eq!(r.total, 0);

    // Moving a meeting changes who finds it before the move is answered.
    let before_move = f.meetings.list(&admin).expect("list");
    let stale = before_move
        .iter()
        .find(|m| m.id == m1.to_string())
        .expect("m1")
        .clone();
    f.meetings
        .set_team(&admin, &m1.to_string(), &oncology)
        .expect("move");
    // Segments whose hand-over raced the move (built while the meeting was still
    // Cardiology's) are indexed under the team storage says now.
    let late = f
        .store
        .read(|tx| tx.segments(&m1.to_string()))
        .expect("segments");
    f.search.segments_stored(&stale, &late);
    assert_eq!(
        f.search
            .search(
                &cara,
                &SearchRequest {
                    q: "warfarin".into(),
                    ..Default::default()
                }
            )
            .expect("search")
            .total,
        0
    );
    assert_eq!(find(&f, &otto, "warfarin").total, 3);

    // Each search is audited with its hit count, not the words searched for.
    let audited = f.audited("search.query");
    assert_eq!(audited.len(), 7);
    assert!(audited
        .iter()
        .all(|e| !format!("{e:?}").contains("warfarin")));
    f.search.stop();
}

#[test]
fn phrases_prefixes_operators_cjk_and_pages() {
    let f = fixture();
    started(&f);
    let admin = f.admin();
    let (agent, key) = f.enroll("Board room");
    let meeting = MeetingId::random();
    let who = f.hello(agent, &key);
    let lines = [
        "budget review for the quarter",
        "review the budget later",
        "reviewers asked about the budget",
        "오늘 회의록을 확인합니다",
        "東京タワーの会議",
    ];
    for (i, text) in lines.iter().enumerate() {
        let e = f.envelope_saying(agent, &key, meeting, i as u64 + 1, i as u64, false, text);
        assert_eq!(f.ingest.accept_envelope(who, &e), Ok(AckStatus::Stored));
    }
    let segs = |q: &str| {
        let mut v: Vec<u64> = find(&f, &admin, q).hits.iter().map(|h| h.segment).collect();
        v.sort();
        v
    };
    assert_eq!(segs("budget"), [0, 1, 2]);
    assert_eq!(segs("\"budget review\""), [0]);
    assert_eq!(segs("revi*"), [0, 1, 2]);
    assert_eq!(segs("review*"), [0, 1, 2]);
    assert_eq!(segs("budget NOT later"), [0, 2]);
    assert_eq!(segs("budget -reviewers"), [0, 1]);
    assert_eq!(segs("quarter OR later"), [0, 1]);
    assert_eq!(segs("(quarter OR later) review"), [0, 1]);
    // Korean: any part of a word; Japanese and Chinese: any run of characters.
    assert_eq!(segs("회의"), [3]);
    assert_eq!(segs("의록"), [3]);
    assert_eq!(segs("회의록을"), [3]);
    assert_eq!(
        segs("회록"),
        Vec::<u64>::new(),
        "characters must be adjacent"
    );
    assert_eq!(segs("タワー"), [4]);
    assert_eq!(segs("会議"), [4]);
    // The snippet marks what matched, by character.
    let hit = find(&f, &admin, "회의").hits.remove(0);
    let marked: String = hit
        .snippet
        .chars()
        .skip(hit.highlights[0][0])
        .take(hit.highlights[0][1] - hit.highlights[0][0])
        .collect();
    assert_eq!(marked, "회의");
    // Pages: newest first by moment in the meeting, then a cursor to the rest.
    let mut req = SearchRequest {
        q: "budget OR 회의 OR 会議".into(),
        limit: Some(2),
        sort: Sort::Newest,
        ..Default::default()
    };
    let mut seen = vec![];
    loop {
        let page = f.search.search(&admin, &req).expect("page");
        assert_eq!(page.total, 5);
        seen.extend(page.hits.iter().map(|h| h.segment));
        match page.next_cursor {
            Some(c) => req.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, [0, 1, 2, 3, 4], "every hit once across pages");
    // Bad requests name what is wrong.
    for (q, field) in [("\"open", "q"), ("NOT budget", "q"), ("", "q")] {
        match f.search.search(
            &admin,
            &SearchRequest {
                q: q.into(),
                ..Default::default()
            },
        ) {
            Err(DomainError::Invalid { field: got, .. }) => assert_eq!(got, field, "{q}"),
            other => panic!("{q}: {other:?}"),
        }
    }
    let bad_cursor = SearchRequest {
        q: "budget".into(),
        cursor: Some("not-a-cursor".into()),
        ..Default::default()
    };
    assert!(matches!(
        f.search.search(&admin, &bad_cursor),
        Err(DomainError::Invalid {
            field: "cursor",
            ..
        })
    ));
    f.search.stop();
}

#[test]
fn the_index_is_built_from_storage_at_every_start_and_kept_off_the_disk() {
    let f = fixture();
    started(&f);
    let admin = f.admin();
    let (agent, key) = f.enroll("Room");
    let meeting = MeetingId::random();
    let who = f.hello(agent, &key);
    let e = f.envelope_saying(agent, &key, meeting, 1, 0, false, "alpha bravo");
    assert_eq!(f.ingest.accept_envelope(who, &e), Ok(AckStatus::Stored));
    assert_eq!(find(&f, &admin, "alpha").total, 1);
    f.search.stop();

    // Stored while the index was closed (as if the appliance died before the
    // indexer's commit): the next start indexes it.
    let e = f.envelope_saying(agent, &key, meeting, 2, 1, false, "alpha charlie");
    assert_eq!(f.ingest.accept_envelope(who, &e), Ok(AckStatus::Stored));
    started(&f);
    wait_until_indexed(&f);
    assert_eq!(find(&f, &admin, "alpha").total, 2);
    f.search.stop();

    // A correction and a tag stored while the index was closed: the next start shows
    // them.
    let id = meeting.to_string();
    f.corrections
        .correct(
            &admin,
            &id,
            0,
            &SegmentPatch {
                text: Some("alpha bravo delta".into()),
                speaker: None,
                expected_version: 0,
            },
        )
        .expect("correct");
    f.meetings
        .update(
            &admin,
            &id,
            &MeetingPatch {
                tags: Some(vec!["Audit".into()]),
                ..Default::default()
            },
        )
        .expect("tag");
    started(&f);
    wait_until_indexed(&f);
    assert_eq!(find(&f, &admin, "delta").total, 1);
    let tagged = f
        .search
        .search(
            &admin,
            &SearchRequest {
                q: "alpha".into(),
                filters: crate::search::Filters {
                    tag: Some("audit".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .expect("search");
    assert_eq!(tagged.total, 2);
    f.search.stop();

    // An index an earlier version kept on disk (plaintext words) is removed at
    // start; the index lives in memory and is built from storage.
    let dir = f.config.data_dir.join(crate::search::DIR);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("segment.idx"), b"alpha bravo").expect("old index");
    started(&f);
    assert!(!dir.exists(), "the index on disk is removed");
    wait_until_indexed(&f);
    assert_eq!(find(&f, &admin, "charlie").total, 1);
    // And on request, audited. Segments handed over just before, in the same batch
    // as the rebuild, are not indexed twice.
    let view = f.meetings.list(&admin).expect("list").remove(0);
    let stored = f
        .store
        .read(|tx| tx.segments(&meeting.to_string()))
        .expect("segments");
    f.search.segments_stored(&view, &stored);
    let (meetings, background) = f.search.reindex(&admin).expect("reindex");
    assert_eq!((meetings, background), (1, true));
    f.search.flush();
    assert_eq!(find(&f, &admin, "bravo").total, 1);
    assert_eq!(find(&f, &admin, "alpha").total, 2, "no segment twice");
    assert_eq!(f.audited("search.reindex").len(), 1);
    f.search.stop();
    // With no appliance running there is no index to build (the next start does).
    assert_eq!(f.search.reindex(&admin).expect("offline"), (1, false));
}

fn wait_until_indexed(f: &Fixture) {
    for _ in 0..500 {
        if f.search.indexing_percent().is_none() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the index was not built");
}

#[test]
fn a_new_empty_appliance_reports_no_indexing() {
    let f = fixture();
    started(&f);
    // Nothing to index: /readyz says plain "ready" from the first moment.
    assert_eq!(f.search.indexing_percent(), None);
    f.search.flush();
    assert_eq!(f.search.indexing_percent(), None);
}
