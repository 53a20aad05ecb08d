//! Which backup sets retention keeps, and when the schedule is due. Pure: times are
//! passed in, with the local time's offset.
//!
//! Retention is restic's `forget --keep-daily/weekly/monthly`: walking the sets from
//! the newest, the newest set of each of the last `daily` days that have a set is
//! kept, likewise for ISO weeks and months; the union is kept, and the newest set
//! always.

use chrono::{DateTime, Datelike, FixedOffset, NaiveTime, TimeZone};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

fn local(ms: i64, tz: FixedOffset) -> DateTime<FixedOffset> {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&tz)
}

/// A calendar period a moment falls in (year, number, kind).
type Bucket = fn(DateTime<FixedOffset>) -> (i32, u32, u32);

/// The sequence numbers to keep of `sets` (`(seq, created_at_ms)`).
pub fn keep(sets: &[(u64, i64)], policy: Keep, tz: FixedOffset) -> BTreeSet<u64> {
    let mut newest_first = sets.to_vec();
    newest_first.sort_by_key(|&(seq, at)| std::cmp::Reverse((at, seq)));
    let mut kept = BTreeSet::new();
    if let Some(&(seq, _)) = newest_first.first() {
        kept.insert(seq);
    }
    let buckets: [(u32, Bucket); 3] = [
        (policy.daily, |t| (t.year(), t.ordinal(), 0)),
        (policy.weekly, |t| {
            let w = t.iso_week();
            (w.year(), w.week(), 1)
        }),
        (policy.monthly, |t| (t.year(), t.month(), 2)),
    ];
    for (n, bucket) in buckets {
        let mut seen = BTreeSet::new();
        for &(seq, at) in &newest_first {
            if seen.len() as u32 >= n {
                break;
            }
            if seen.insert(bucket(local(at, tz))) {
                kept.insert(seq);
            }
        }
    }
    kept
}

/// Parses `backup.schedule` (`"HH:MM"`, local time).
pub fn parse_schedule(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M").ok()
}

/// The newest scheduled moment at or before `now_ms` (ms).
pub fn last_due(at: NaiveTime, now_ms: i64, tz: FixedOffset) -> i64 {
    let now = local(now_ms, tz);
    let today = now.date_naive().and_time(at);
    let today = tz
        .from_local_datetime(&today)
        .single()
        .map_or(now_ms, |t| t.timestamp_millis());
    if today <= now_ms {
        today
    } else {
        today - 24 * 3600 * 1000
    }
}

/// The next scheduled moment after `now_ms`.
pub fn next_due(at: NaiveTime, now_ms: i64, tz: FixedOffset) -> i64 {
    last_due(at, now_ms, tz) + 24 * 3600 * 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 24 * 3600 * 1000;
    const T0: i64 = 1_798_761_600_000; // 2027-01-01T00:00:00Z

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).expect("utc")
    }

    #[test]
    fn nightly_sets_for_a_year_keep_seven_days_four_weeks_twelve_months() {
        let sets: Vec<(u64, i64)> = (0..365)
            .map(|d| (d as u64 + 1, T0 + d * DAY + 2 * 3600 * 1000))
            .collect();
        let policy = Keep {
            daily: 7,
            weekly: 4,
            monthly: 12,
        };
        let kept = keep(&sets, policy, utc());
        // 7 days; the 4 weeks' newest overlap the newest days; 12 month ends.
        assert!(kept.contains(&365));
        for d in 359..=365 {
            assert!(kept.contains(&d), "day {d}");
        }
        assert!(kept.len() <= 7 + 4 + 12 && kept.len() >= 12, "{kept:?}");
        // 2027-01-31 is day 31: the newest set of January.
        assert!(kept.contains(&31));
    }

    proptest! {
        #[test]
        fn the_newest_is_kept_the_count_is_bounded_and_keeping_again_keeps_the_same(
            gaps in proptest::collection::vec(0i64..(3 * DAY), 1..80),
            daily in 0u32..10, weekly in 0u32..6, monthly in 0u32..14,
        ) {
            let mut at = T0;
            let sets: Vec<(u64, i64)> = gaps.iter().enumerate().map(|(i, g)| { at += g; (i as u64 + 1, at) }).collect();
            let policy = Keep { daily, weekly, monthly };
            let kept = keep(&sets, policy, utc());
            prop_assert!(kept.contains(&(sets.len() as u64)));
            prop_assert!(kept.len() as u32 <= daily + weekly + monthly + 1);
            let again: Vec<(u64, i64)> = sets.iter().copied().filter(|(s, _)| kept.contains(s)).collect();
            prop_assert_eq!(keep(&again, policy, utc()), kept);
        }
    }

    #[test]
    fn the_schedule_is_local_time() {
        let at = parse_schedule("02:00").expect("time");
        let cet = FixedOffset::east_opt(3600).expect("cet");
        // 2027-01-01 00:30Z is 01:30 in CET: the last run was due the day before.
        let now = T0 + 30 * 60 * 1000;
        assert_eq!(last_due(at, now, cet), T0 - DAY + 3600 * 1000);
        assert_eq!(next_due(at, now, cet), T0 + 3600 * 1000);
        assert!(parse_schedule("25:00").is_none());
        assert!(parse_schedule("2am").is_none());
    }
}
