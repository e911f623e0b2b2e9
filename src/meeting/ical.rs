//! The iCalendar object of a meeting (RFC 5545), as an iTIP message (RFC 5546): a
//! VCALENDAR with PRODID, VERSION and METHOD (REQUEST for an announcement or update,
//! section 3.2.2; CANCEL for a cancellation, section 3.2.5), a VTIMEZONE for the
//! meeting's zone (RFC 5545 section 3.6.5) and one VEVENT with UID, DTSTAMP,
//! DTSTART/DTEND with TZID, SUMMARY, LOCATION, URL, DESCRIPTION, SEQUENCE, STATUS,
//! ORGANIZER and the list as a group ATTENDEE.
//!
//! Content lines end in CRLF and are folded at 75 octets, never inside a UTF-8 sequence
//! (section 3.1); TEXT values are escaped (section 3.3.11: backslash, semicolon, comma,
//! newline); parameter values that hold `:`, `;` or `,` are quoted (section 3.2).
//!
//! The VTIMEZONE is computed from the IANA database (chrono-tz): one observance
//! (STANDARD or DAYLIGHT) for each offset change in the year before the meeting to the
//! year after it, each with its own DTSTART (the onset in the local time before the
//! change), TZOFFSETFROM, TZOFFSETTO and TZNAME, plus the observance in effect at the
//! start of that window. A zone without changes gets one STANDARD observance.

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, OffsetName, Tz};

/// The iTIP method (RFC 5546 section 1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// An invitation, or its update (same UID, higher SEQUENCE).
    Request,
    /// The meeting is cancelled.
    Cancel,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Request => "REQUEST",
            Method::Cancel => "CANCEL",
        }
    }
}

/// What the VEVENT says.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub uid: &'a str,
    pub sequence: i64,
    pub dtstamp: DateTime<Utc>,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    pub tz: Tz,
    pub summary: &'a str,
    pub location: Option<&'a str>,
    pub url: Option<&'a str>,
    pub description: Option<&'a str>,
    pub cancelled: bool,
    /// (common name, address)
    pub organizer: (Option<&'a str>, &'a str),
    /// The list, invited as a group.
    pub attendee: Option<(Option<&'a str>, &'a str)>,
    pub comment: Option<&'a str>,
}

/// The PRODID of everything concord writes.
pub const PRODID: &str = concat!("-//concord//meetings ", env!("CARGO_PKG_VERSION"), "//EN");

/// Escapes a TEXT value (RFC 5545 section 3.3.11): `\` `;` `,` and line breaks; other
/// control characters but HTAB are dropped.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push_str("\\n");
                }
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push('\t'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A parameter value (RFC 5545 section 3.2): control characters and DQUOTE dropped,
/// quoted when it holds `:`, `;` or `,`.
pub fn param_value(s: &str) -> String {
    let v: String = s.chars().filter(|c| !c.is_control() && *c != '"').collect();
    if v.contains([':', ';', ',']) {
        format!("\"{v}\"")
    } else {
        v
    }
}

/// A URI value: control characters and spaces dropped (they cannot occur in one).
fn uri(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .collect()
}

/// Folds one content line (RFC 5545 section 3.1): at most 75 octets per physical line,
/// continuation lines starting with a space, never splitting a UTF-8 sequence. Returns
/// the physical lines joined with CRLF, without a final CRLF.
pub fn fold(line: &str) -> String {
    if line.len() <= 75 {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len() + line.len() / 70 * 3);
    let mut rest = line;
    let mut limit = 75;
    while rest.len() > limit {
        let mut cut = limit;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n ");
        rest = &rest[cut..];
        // The leading space counts toward the 75 octets.
        limit = 74;
    }
    out.push_str(rest);
    out
}

fn local_stamp(t: NaiveDateTime) -> String {
    t.format("%Y%m%dT%H%M%S").to_string()
}

fn utc_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn offset(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.abs();
    let (h, m, s) = (a / 3600, a % 3600 / 60, a % 60);
    if s == 0 {
        format!("{sign}{h:02}{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}{s:02}")
    }
}

/// The offset regime in force at an instant: total offset, whether it is summer time,
/// abbreviation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Regime {
    total: i32,
    dst: bool,
    name: Option<String>,
}

fn regime(tz: Tz, t: DateTime<Utc>) -> Regime {
    let o = tz.offset_from_utc_datetime(&t.naive_utc());
    Regime {
        total: o.fix().local_minus_utc(),
        dst: o.dst_offset() != Duration::zero(),
        name: o
            .abbreviation()
            .filter(|a| !a.starts_with(['+', '-']))
            .map(str::to_string),
    }
}

/// The instants in `from..to` where `tz` changes regime, with the regimes before and
/// after. Looks every hour (no zone changes twice within an hour), then narrows each
/// change down to the second.
fn transitions(
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, Regime, Regime)> {
    let mut out = Vec::new();
    let step = Duration::hours(1);
    let mut t = from;
    let mut r = regime(tz, t);
    while t < to {
        let n = t + step;
        let rn = regime(tz, n);
        if rn != r {
            // The first second at which `rn` is in force.
            let (mut lo, mut hi) = (t, n);
            while hi - lo > Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if regime(tz, mid) == r {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            out.push((hi, r.clone(), rn.clone()));
        }
        t = n;
        r = rn;
    }
    out
}

fn observance(lines: &mut Vec<String>, onset_local: NaiveDateTime, from: &Regime, to: &Regime) {
    let kind = if to.dst { "DAYLIGHT" } else { "STANDARD" };
    lines.push(format!("BEGIN:{kind}"));
    lines.push(format!("DTSTART:{}", local_stamp(onset_local)));
    lines.push(format!("TZOFFSETFROM:{}", offset(from.total)));
    lines.push(format!("TZOFFSETTO:{}", offset(to.total)));
    if let Some(n) = &to.name {
        lines.push(format!("TZNAME:{}", escape_text(n)));
    }
    lines.push(format!("END:{kind}"));
}

/// The VTIMEZONE component of `tz` (content lines, unfolded) valid over a year either
/// side of `start..end`.
pub fn vtimezone(tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<String> {
    let from = start - Duration::days(366);
    let to = end + Duration::days(366);
    let first = regime(tz, from);
    let mut lines = vec!["BEGIN:VTIMEZONE".to_string(), format!("TZID:{}", tz.name())];
    // The regime in force when the window opens, as if since 1970: every instant before
    // the first change below reads it.
    let epoch = DateTime::<Utc>::from_timestamp(0, 0)
        .unwrap_or_default()
        .naive_utc();
    observance(&mut lines, epoch, &first, &first);
    for (at, before, after) in transitions(tz, from, to) {
        let onset = at.naive_utc() + Duration::seconds(i64::from(before.total));
        observance(&mut lines, onset, &before, &after);
    }
    lines.push("END:VTIMEZONE".into());
    lines
}

/// The complete iCalendar object, CRLF line ends, folded.
pub fn calendar(method: Method, e: &Event<'_>) -> String {
    let mut lines: Vec<String> = vec![
        "BEGIN:VCALENDAR".into(),
        format!("PRODID:{}", escape_text(PRODID)),
        "VERSION:2.0".into(),
        "CALSCALE:GREGORIAN".into(),
        format!("METHOD:{}", method.as_str()),
    ];
    let start_utc =
        e.tz.from_local_datetime(&e.start)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| e.start.and_utc());
    let end_utc =
        e.tz.from_local_datetime(&e.end)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| e.end.and_utc());
    lines.extend(vtimezone(e.tz, start_utc, end_utc));
    lines.push("BEGIN:VEVENT".into());
    lines.push(format!("UID:{}", escape_text(e.uid)));
    lines.push(format!("DTSTAMP:{}", utc_stamp(e.dtstamp)));
    lines.push(format!(
        "DTSTART;TZID={}:{}",
        param_value(e.tz.name()),
        local_stamp(e.start)
    ));
    lines.push(format!(
        "DTEND;TZID={}:{}",
        param_value(e.tz.name()),
        local_stamp(e.end)
    ));
    lines.push(format!("SEQUENCE:{}", e.sequence.max(0)));
    lines.push(format!("SUMMARY:{}", escape_text(e.summary)));
    if let Some(l) = e.location {
        lines.push(format!("LOCATION:{}", escape_text(l)));
    }
    if let Some(u) = e.url {
        lines.push(format!("URL:{}", uri(u)));
    }
    if let Some(d) = e.description {
        lines.push(format!("DESCRIPTION:{}", escape_text(d)));
    }
    if let Some(c) = e.comment {
        lines.push(format!("COMMENT:{}", escape_text(c)));
    }
    lines.push(format!(
        "STATUS:{}",
        if e.cancelled {
            "CANCELLED"
        } else {
            "CONFIRMED"
        }
    ));
    lines.push("TRANSP:OPAQUE".into());
    let (cn, addr) = e.organizer;
    lines.push(match cn {
        Some(n) => format!("ORGANIZER;CN={}:mailto:{}", param_value(n), uri(addr)),
        None => format!("ORGANIZER:mailto:{}", uri(addr)),
    });
    if let Some((cn, addr)) = e.attendee {
        let cn = cn
            .map(|n| format!(";CN={}", param_value(n)))
            .unwrap_or_default();
        lines.push(format!(
            "ATTENDEE;CUTYPE=GROUP;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALSE{cn}:mailto:{}",
            uri(addr)
        ));
    }
    lines.push("END:VEVENT".into());
    lines.push("END:VCALENDAR".into());
    let mut out = String::new();
    for l in lines {
        out.push_str(&fold(&l));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape_text("a\\b;c,d\r\ne\nf\u{7}g\th"),
            "a\\\\b\\;c\\,d\\ne\\nfg\th"
        );
        assert_eq!(param_value("Stuart, Richard"), "\"Stuart, Richard\"");
        assert_eq!(param_value("A \"B\" C"), "A B C");
    }

    #[test]
    fn folding_keeps_75_octets_and_whole_characters() {
        let long = format!("DESCRIPTION:{}", "é".repeat(100));
        let folded = fold(&long);
        for l in folded.split("\r\n") {
            assert!(l.len() <= 75, "{} octets: {l}", l.len());
        }
        let unfolded = folded.replace("\r\n ", "");
        assert_eq!(unfolded, long);
        assert_eq!(fold("SHORT:x"), "SHORT:x");
        let exactly = "X".repeat(75);
        assert_eq!(fold(&exactly), exactly);
        let f = fold(&"Y".repeat(76));
        assert_eq!(f, format!("{}\r\n Y", "Y".repeat(75)));
    }

    #[test]
    fn zurich_has_its_summer_time_changes() {
        let tz: Tz = "Europe/Zurich".parse().unwrap();
        let s = Utc.with_ymd_and_hms(2012, 7, 4, 12, 30, 0).unwrap();
        let lines = vtimezone(tz, s, s + Duration::hours(3));
        let text = lines.join("\n");
        assert!(text.contains("TZID:Europe/Zurich"));
        // 2012-03-25 01:00 UTC: CET 02:00 becomes CEST 03:00.
        assert!(
            text.contains(
                "BEGIN:DAYLIGHT\nDTSTART:20120325T020000\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nTZNAME:CEST\nEND:DAYLIGHT"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "BEGIN:STANDARD\nDTSTART:20121028T030000\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nTZNAME:CET"
            ),
            "{text}"
        );
        // A zone without changes: one observance.
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        let t = vtimezone(tokyo, s, s).join("\n");
        assert_eq!(t.matches("BEGIN:STANDARD").count(), 1, "{t}");
        assert!(t.contains("TZOFFSETTO:+0900"), "{t}");
        let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
        assert!(vtimezone(kolkata, s, s).join("\n").contains("+0530"));
    }
}
