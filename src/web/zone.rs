//! The reader's time zone on pages that show times (the meeting pages). Every time is
//! written on the server in the event's own zone and in UTC, each inside a `<time>`
//! element whose `datetime` is the instant in RFC 3339 UTC (`2012-07-04T12:30:00Z`). A
//! reader may choose a zone with `?tz=Area/City` (an IANA name, checked against the tz
//! database chrono-tz carries); the choice is remembered in the `tz` cookie (RFC 6265,
//! `SameSite=Lax`) and the page then shows the times in that zone too, without any
//! script. When no zone was chosen, a small inline script (progressive enhancement) shows
//! them in the browser's own zone (`Intl.DateTimeFormat`); the page's
//! Content-Security-Policy allows that one script by its SHA-256 hash (CSP Level 3
//! hash-source) and nothing else.

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{OffsetName, Tz};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The cookie that remembers the chosen zone.
pub const COOKIE: &str = "tz";

/// How long the choice is remembered (a year).
const COOKIE_SECONDS: i64 = 365 * 86_400;

/// Zones offered in the form's suggestions (any IANA name is accepted).
pub const SUGGESTED: &[&str] = &[
    "UTC",
    "Europe/Zurich",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Moscow",
    "Africa/Cairo",
    "Africa/Nairobi",
    "Africa/Lagos",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Asia/Seoul",
    "Asia/Tokyo",
    "Asia/Singapore",
    "Australia/Sydney",
    "Pacific/Auckland",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "America/Toronto",
];

/// The script that shows the times of `.browser-zone` blocks in the browser's own zone
/// and reveals them. It reads everything from the page, so its text (and hash) never
/// changes.
pub const SCRIPT: &str = r#"(function(){var z;try{z=Intl.DateTimeFormat().resolvedOptions().timeZone}catch(e){}if(!z)return;var f=new Intl.DateTimeFormat("en-GB",{timeZone:z,year:"numeric",month:"2-digit",day:"2-digit",hour:"2-digit",minute:"2-digit",hourCycle:"h23"});function p(t){var o={};f.formatToParts(new Date(t.getAttribute("datetime"))).forEach(function(x){o[x.type]=x.value});return[o.year+"-"+o.month+"-"+o.day,o.hour+":"+o.minute]}document.querySelectorAll(".browser-zone").forEach(function(b){var d="";b.querySelectorAll("time[datetime]").forEach(function(t){var v=p(t),end=t.classList.contains("end");t.textContent=end&&v[0]===d?v[1]:v[0]+" "+v[1];if(!end)d=v[0]});b.querySelectorAll(".browser-zone-name").forEach(function(n){n.textContent=z});b.hidden=false});var i=document.getElementById("tz");if(i&&!i.value)i.placeholder=z})();"#;

/// The Content-Security-Policy of a page that carries [`SCRIPT`]: the site's usual
/// policy, plus that one script by its hash.
pub static CSP_WITH_SCRIPT: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT));
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'; script-src 'sha256-{hash}'"
    )
});

/// The zone a request asks for, and what to tell the reader and the browser.
#[derive(Debug, Clone, Default)]
pub struct Reader {
    /// The zone to show times in besides the event's and UTC.
    pub tz: Option<Tz>,
    /// Why `?tz=` was refused.
    pub problem: Option<String>,
    /// A `Set-Cookie` value: the new choice, or its removal.
    pub set_cookie: Option<String>,
}

impl Reader {
    /// From `?tz=` (`query`: `None` when absent; empty: forget the choice) and the `tz`
    /// cookie. An invalid `?tz=` leaves the remembered choice alone and says why.
    pub fn read(query: Option<&str>, headers: &HeaderMap, secure: bool) -> Self {
        let remembered = cookie(headers).and_then(|v| parse(&v));
        let attrs = format!(
            "Path=/; SameSite=Lax; HttpOnly{}",
            if secure { "; Secure" } else { "" }
        );
        match query.map(str::trim) {
            None => Reader {
                tz: remembered,
                ..Reader::default()
            },
            Some("") => Reader {
                tz: None,
                problem: None,
                set_cookie: Some(format!("{COOKIE}=; {attrs}; Max-Age=0")),
            },
            Some(q) => match parse(q) {
                Some(tz) => Reader {
                    tz: Some(tz),
                    problem: None,
                    set_cookie: Some(format!(
                        "{COOKIE}={}; {attrs}; Max-Age={COOKIE_SECONDS}",
                        tz.name()
                    )),
                },
                None => Reader {
                    tz: remembered,
                    problem: Some(format!(
                        "{:?} is not a time zone: give an IANA name such as \
                         \"America/New_York\", \"Europe/Zurich\" or \"UTC\".",
                        q.chars().take(80).collect::<String>()
                    )),
                    set_cookie: None,
                },
            },
        }
    }

    /// Adds the cookie and, when the browser's zone is to be filled in (no zone chosen),
    /// the policy that lets [`SCRIPT`] run.
    pub fn finish(&self, res: &mut Response) {
        let h = res.headers_mut();
        if let Some(c) = &self.set_cookie
            && let Ok(v) = HeaderValue::from_str(c)
        {
            h.append(header::SET_COOKIE, v);
        }
        if self.tz.is_none()
            && let Ok(v) = HeaderValue::from_str(&CSP_WITH_SCRIPT)
        {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
}

/// An IANA zone name, as chrono-tz knows it.
pub fn parse(name: &str) -> Option<Tz> {
    let n = name.trim();
    if n.is_empty() || n.len() > 64 {
        return None;
    }
    n.parse::<Tz>().ok()
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    for h in headers.get_all(header::COOKIE) {
        let Ok(s) = h.to_str() else { continue };
        for pair in s.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == COOKIE
            {
                return Some(v.trim_matches('"').to_string());
            }
        }
    }
    None
}

/// An instant in RFC 3339 UTC, for `<time datetime>`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// "CEST, UTC+02:00" (or just the offset where the zone has no abbreviation) at `t`.
pub fn note(tz: Tz, t: DateTime<Utc>) -> String {
    let off = tz.offset_from_utc_datetime(&t.naive_utc());
    let secs = off.fix().local_minus_utc();
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.abs();
    let utc = format!("UTC{sign}{:02}:{:02}", a / 3600, a % 3600 / 60);
    match off.abbreviation() {
        Some(ab) if !ab.starts_with(['+', '-']) && ab != "UTC" => format!("{ab}, {utc}"),
        _ => utc,
    }
}

/// A start and an end as one zone shows them: "2012-07-04 14:30" and "17:30" (the end's
/// date only when it falls on another day).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Side {
    pub start: String,
    pub end: String,
    pub zone: String,
    pub note: String,
}

impl Side {
    fn of(start: NaiveDateTime, end: NaiveDateTime, zone: &str, note: String) -> Self {
        Side {
            start: start.format("%Y-%m-%d %H:%M").to_string(),
            end: if start.date() == end.date() {
                end.format("%H:%M").to_string()
            } else {
                end.format("%Y-%m-%d %H:%M").to_string()
            },
            zone: zone.to_string(),
            note,
        }
    }

    /// `start..end` in `tz`.
    pub fn in_zone(tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Side::of(
            start.with_timezone(&tz).naive_local(),
            end.with_timezone(&tz).naive_local(),
            tz.name(),
            note(tz, start),
        )
    }
}

/// A period as the pages show it: the instants (RFC 3339 UTC), and the wall-clock times
/// in the event's zone, in UTC, and in the reader's zone when one was chosen.
#[derive(Debug, Clone, Serialize)]
pub struct Span {
    pub start: String,
    pub end: String,
    pub local: Side,
    pub utc: Side,
    pub reader: Option<Side>,
}

impl Span {
    /// `start_utc..end_utc` of an event kept in `tz` as `start..end` (its wall clock).
    pub fn new(
        tz: Tz,
        start: NaiveDateTime,
        end: NaiveDateTime,
        start_utc: DateTime<Utc>,
        end_utc: DateTime<Utc>,
        reader: Option<Tz>,
    ) -> Self {
        Span {
            start: rfc3339(start_utc),
            end: rfc3339(end_utc),
            local: Side::of(start, end, tz.name(), note(tz, start_utc)),
            utc: Side::of(
                start_utc.naive_utc(),
                end_utc.naive_utc(),
                "UTC",
                String::new(),
            ),
            reader: reader.map(|r| Side::in_zone(r, start_utc, end_utc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
        h
    }

    #[test]
    fn choice_cookie_and_refusal() {
        let none = HeaderMap::new();
        let r = Reader::read(Some("America/New_York"), &none, false);
        assert_eq!(r.tz, Some(chrono_tz::America::New_York));
        let c = r.set_cookie.unwrap();
        assert!(
            c.starts_with("tz=America/New_York; Path=/; SameSite=Lax"),
            "{c}"
        );
        assert!(!c.contains("Secure"));
        let r = Reader::read(None, &headers("a=b; tz=Asia/Tokyo"), true);
        assert_eq!(r.tz, Some(chrono_tz::Asia::Tokyo));
        assert!(r.set_cookie.is_none());
        let r = Reader::read(Some("Mars/Olympus"), &headers("tz=Asia/Tokyo"), false);
        assert_eq!(r.tz, Some(chrono_tz::Asia::Tokyo), "the old choice stays");
        assert!(r.problem.unwrap().contains("Mars/Olympus"));
        let r = Reader::read(Some(""), &headers("tz=Asia/Tokyo"), true);
        assert_eq!(r.tz, None);
        assert!(r.set_cookie.unwrap().contains("Max-Age=0"));
        assert_eq!(Reader::read(None, &headers("tz=<x>"), false).tz, None);
    }

    #[test]
    fn spans_in_three_zones() {
        let tz: Tz = "Europe/Zurich".parse().unwrap();
        let s = Utc.with_ymd_and_hms(2012, 7, 4, 12, 30, 0).unwrap();
        let e = Utc.with_ymd_and_hms(2012, 7, 4, 15, 30, 0).unwrap();
        let sp = Span::new(
            tz,
            s.with_timezone(&tz).naive_local(),
            e.with_timezone(&tz).naive_local(),
            s,
            e,
            Some(chrono_tz::Asia::Tokyo),
        );
        assert_eq!(sp.start, "2012-07-04T12:30:00Z");
        assert_eq!(
            (sp.local.start.as_str(), sp.local.end.as_str()),
            ("2012-07-04 14:30", "17:30")
        );
        assert_eq!(sp.local.note, "CEST, UTC+02:00");
        assert_eq!(sp.utc.start, "2012-07-04 12:30");
        let tokyo = sp.reader.unwrap();
        assert_eq!(
            (tokyo.start.as_str(), tokyo.end.as_str()),
            ("2012-07-04 21:30", "2012-07-05 00:30")
        );
        assert_eq!(tokyo.note, "JST, UTC+09:00");
    }

    #[test]
    fn the_policy_names_the_script_hash() {
        assert!(CSP_WITH_SCRIPT.contains("script-src 'sha256-"));
        assert!(!CSP_WITH_SCRIPT.contains("unsafe-inline"));
    }
}
