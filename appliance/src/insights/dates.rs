//! When something is due, from the words that say it ("tomorrow", "by Friday",
//! "next week", "in three days", "내일", "금요일까지", "다음 주"), resolved against the
//! meeting's date.
//!
//! The choices: a weekday means the next one after the meeting's day (said on a
//! Friday, "by Friday" is a week later); "next week" is its Monday; "end of the
//! week" its Friday; "next month" its first day; "end of the month" its last.

use super::text::{find, Lang};
use chrono::{Datelike, Duration, NaiveDate, Weekday};

/// The due date `tokens` name, if any, for a meeting held on `day`.
pub fn due(tokens: &[String], lang: Lang, day: NaiveDate) -> Option<NaiveDate> {
    match lang {
        Lang::English => english(tokens, day),
        Lang::Korean => korean(tokens, day),
    }
}

fn english(t: &[String], day: NaiveDate) -> Option<NaiveDate> {
    let has = |p: &[&str]| find(t, p, 0).is_some();
    if has(&["end", "of", "the", "day"]) || has(&["end", "of", "day"]) {
        return Some(day);
    }
    if has(&["end", "of", "the", "week"]) || has(&["end", "of", "week"]) {
        return Some(this_week(day, Weekday::Fri));
    }
    if has(&["end", "of", "the", "month"]) || has(&["end", "of", "month"]) {
        return Some(last_of_month(day));
    }
    for (i, w) in t.iter().enumerate() {
        let next = t.get(i + 1).map(String::as_str);
        match w.as_str() {
            "today" | "tonight" => return Some(day),
            "tomorrow" | "tomorrow's" => return Some(day + Duration::days(1)),
            "next" => match next.map(|n| n.trim_end_matches("'s")) {
                Some("week") => return Some(monday_after(day)),
                Some("month") => return first_of_next_month(day),
                Some(n) => {
                    if let Some(wd) = weekday(n) {
                        // "next Friday": the Friday of next week.
                        return Some(this_week(monday_after(day), wd));
                    }
                }
                None => {}
            },
            "in" | "within" => {
                if let (Some(n), Some(unit)) = (next.and_then(number), t.get(i + 2)) {
                    match unit.trim_end_matches('s') {
                        "day" => return Some(day + Duration::days(n)),
                        "week" => return Some(day + Duration::weeks(n)),
                        _ => {}
                    }
                }
            }
            _ => {
                if let Some(wd) = weekday(w) {
                    return Some(next_weekday(day, wd));
                }
            }
        }
    }
    None
}

fn korean(t: &[String], day: NaiveDate) -> Option<NaiveDate> {
    for (i, w) in t.iter().enumerate() {
        let next = t.get(i + 1).map(String::as_str).unwrap_or("");
        if w.starts_with("오늘") {
            return Some(day);
        }
        if w.starts_with("내일") {
            return Some(day + Duration::days(1));
        }
        if w.starts_with("모레") {
            return Some(day + Duration::days(2));
        }
        if (w == "다음" && next.starts_with('주')) || w.starts_with("다음주") {
            return Some(monday_after(day));
        }
        if (w == "이번" && next.starts_with('주')) || w.starts_with("이번주") {
            return Some(this_week(day, Weekday::Fri));
        }
        if (w == "다음" && next.starts_with('달')) || w.starts_with("다음달") {
            return first_of_next_month(day);
        }
        for (name, wd) in [
            ("월요일", Weekday::Mon),
            ("화요일", Weekday::Tue),
            ("수요일", Weekday::Wed),
            ("목요일", Weekday::Thu),
            ("금요일", Weekday::Fri),
            ("토요일", Weekday::Sat),
            ("일요일", Weekday::Sun),
        ] {
            if w.starts_with(name) {
                return Some(next_weekday(day, wd));
            }
        }
    }
    None
}

fn weekday(w: &str) -> Option<Weekday> {
    Some(match w.trim_end_matches("'s") {
        "monday" => Weekday::Mon,
        "tuesday" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        "sunday" => Weekday::Sun,
        _ => return None,
    })
}

fn number(w: &str) -> Option<i64> {
    if let Ok(n) = w.parse::<i64>() {
        return Some(n).filter(|n| (1..=365).contains(n));
    }
    Some(match w {
        "a" | "an" | "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "ten" => 10,
        "fourteen" => 14,
        _ => return None,
    })
}

/// The next `wd` strictly after `day`.
fn next_weekday(day: NaiveDate, wd: Weekday) -> NaiveDate {
    let ahead =
        (7 + wd.num_days_from_monday() as i64 - day.weekday().num_days_from_monday() as i64) % 7;
    day + Duration::days(if ahead == 0 { 7 } else { ahead })
}

/// `wd` of the week (Monday to Sunday) holding `day`.
fn this_week(day: NaiveDate, wd: Weekday) -> NaiveDate {
    day + Duration::days(
        wd.num_days_from_monday() as i64 - day.weekday().num_days_from_monday() as i64,
    )
}

fn monday_after(day: NaiveDate) -> NaiveDate {
    next_weekday(day, Weekday::Mon)
}

fn first_of_next_month(day: NaiveDate) -> Option<NaiveDate> {
    let (y, m) = if day.month() == 12 {
        (day.year() + 1, 1)
    } else {
        (day.year(), day.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
}

fn last_of_month(day: NaiveDate) -> NaiveDate {
    first_of_next_month(day).map_or(day, |d| d - Duration::days(1))
}

#[cfg(test)]
mod tests {
    use super::super::text::tokens;
    use super::*;

    /// Wednesday 2026-12-02.
    fn wed() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 2).expect("date")
    }

    fn en(s: &str) -> Option<String> {
        due(&tokens(s), Lang::English, wed()).map(|d| d.to_string())
    }

    fn ko(s: &str) -> Option<String> {
        due(&tokens(s), Lang::Korean, wed()).map(|d| d.to_string())
    }

    #[test]
    fn english_phrases_resolve_against_the_meeting_day() {
        assert_eq!(en("send an update tomorrow").as_deref(), Some("2026-12-03"));
        assert_eq!(en("review it by Friday.").as_deref(), Some("2026-12-04"));
        assert_eq!(en("by wednesday").as_deref(), Some("2026-12-09"));
        assert_eq!(
            en("before next week's meeting").as_deref(),
            Some("2026-12-07")
        );
        assert_eq!(en("next Friday").as_deref(), Some("2026-12-11"));
        assert_eq!(en("in three days").as_deref(), Some("2026-12-05"));
        assert_eq!(en("within 2 weeks").as_deref(), Some("2026-12-16"));
        assert_eq!(en("by the end of the week").as_deref(), Some("2026-12-04"));
        assert_eq!(en("end of the month").as_deref(), Some("2026-12-31"));
        assert_eq!(en("next month").as_deref(), Some("2027-01-01"));
        assert_eq!(en("by end of day").as_deref(), Some("2026-12-02"));
        assert_eq!(en("we will look at it"), None);
        assert_eq!(en("in a while"), None);
    }

    #[test]
    fn korean_phrases_resolve_against_the_meeting_day() {
        assert_eq!(ko("내일 보내겠습니다").as_deref(), Some("2026-12-03"));
        assert_eq!(
            ko("다음 주까지 완료하겠습니다").as_deref(),
            Some("2026-12-07")
        );
        assert_eq!(
            ko("금요일까지 검토해 주세요").as_deref(),
            Some("2026-12-04")
        );
        assert_eq!(ko("모레 알려 드리겠습니다").as_deref(), Some("2026-12-04"));
        assert_eq!(ko("검토하겠습니다"), None);
    }

    #[test]
    fn a_weekday_said_on_that_day_means_a_week_later() {
        let fri = NaiveDate::from_ymd_opt(2026, 12, 4).expect("date");
        assert_eq!(
            due(&tokens("by friday"), Lang::English, fri),
            NaiveDate::from_ymd_opt(2026, 12, 11)
        );
    }
}
