//! Meetings on the web, on the router in process: the register's access rules (anonymous
//! visitors refused, or served without the access code when the register is public), the
//! access code only for members of the meeting's list, times in the meeting's zone, in
//! UTC and in a zone the reader chose (`?tz=`, remembered in a cookie; an invalid zone
//! refused with a message), the inline script allowed by its hash in the
//! Content-Security-Policy, the iCalendar object (RFC 5545) parsed back with the
//! `icalendar` crate and compared with the one the announcement carried, the JSON API
//! with and without a token, and hostile titles and places escaped.

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use chrono::{NaiveDateTime, TimeZone, Utc};
use concord::meeting::{self, Meeting, NewMeeting};
use concord::web::{auth, zone};
use icalendar::parser::{Component, read_calendar, unfold};
use sha2::{Digest, Sha256};

use crate::web::Site;

const ACCESS_CODE: &str = "SECRET-7788";
const ALICE: &str = "alice@example.org";
const CAROL: &str = "carol@example.org";

fn local(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
}

fn geneva() -> NewMeeting {
    NewMeeting {
        title: "JCA-SG&HN meeting, Geneva".into(),
        start: Some(local("2012-07-04 14:30")),
        end: Some(local("2012-07-04 17:30")),
        timezone: Some("Europe/Zurich".into()),
        place: Some("ITU headquarters, Geneva".into()),
        remote_url: Some("https://meet.example.org/jca-sghn?room=7".into()),
        dial_in: Some("+41 22 730 5111".into()),
        access_code: Some(ACCESS_CODE.into()),
        ..NewMeeting::default()
    }
}

async fn add(site: &Site, m: NewMeeting) -> Meeting {
    let mut conn = site.pool.acquire().await.unwrap();
    meeting::add(
        &mut conn,
        &site.state.config,
        &m,
        Utc.with_ymd_and_hms(2012, 6, 1, 8, 0, 0)
            .unwrap()
            .timestamp(),
    )
    .await
    .unwrap()
}

/// Status, headers and body (with the templates' `&#x2f;` put back to `/`).
async fn get(site: &Site, path: &str, cookie: Option<&str>) -> (StatusCode, HeaderMap, String) {
    let (s, h, b) = site.request("GET", path, cookie, None, None).await;
    (s, h, String::from_utf8_lossy(&b).replace("&#x2f;", "/"))
}

async fn api(site: &Site, path: &str, token: Option<&str>) -> (StatusCode, serde_json::Value) {
    let (s, _, b) = site.request("GET", path, None, token, None).await;
    (s, serde_json::from_slice(&b).unwrap_or_default())
}

fn csp(h: &HeaderMap) -> String {
    h.get(header::CONTENT_SECURITY_POLICY)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn set_cookies(h: &HeaderMap) -> Vec<String> {
    h.get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// The page with our own inline script taken out holds no markup from the data.
fn no_foreign_markup(page: &str) {
    let own = format!("<script>{}</script>", zone::SCRIPT);
    let lower = page.replace(&own, "").to_ascii_lowercase();
    assert!(!lower.contains("<script"), "unescaped script in:\n{page}");
    assert!(!lower.contains("<img"), "unescaped img in:\n{page}");
    assert!(
        !lower.contains("href=\"javascript:"),
        "a script link in:\n{page}"
    );
}

#[tokio::test]
async fn meeting_pages_follow_the_register_rules_and_keep_the_access_code_for_members() {
    let site = Site::new().await;
    let m = add(&site, geneva()).await;
    let path = format!("/meetings/{}", m.id);

    // Anonymous visitors are asked to sign in, as on the register's pages.
    for p in [
        "/meetings".to_string(),
        path.clone(),
        format!("{path}/report"),
        format!("{path}/invite.ics"),
    ] {
        let (s, _, page) = get(&site, &p, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{p}");
        assert!(page.contains("/login?next="), "{p}: {page}");
        assert!(!page.contains(ACCESS_CODE));
    }
    let (_, _, home) = get(&site, "/", None).await;
    assert!(home.contains("href=\"/meetings\""), "the site's navigation");

    // A member of the meeting's list sees everything, the access code included.
    let alice = site.cookie(ALICE);
    let (s, h, page) = get(&site, &path, Some(&alice)).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains("JCA-SG&amp;HN meeting, Geneva"), "{page}");
    assert!(page.contains(ACCESS_CODE), "{page}");
    assert!(page.contains("https://meet.example.org/jca-sghn?room=7"));
    assert!(page.contains("+41 22 730 5111"));
    assert!(page.contains("name=\"viewport\""));
    // The draft agenda links the statement pages.
    assert!(
        page.contains(&format!(
            "<a href=\"/ls/statement/{0}\">{0}</a>",
            site.statement
        )),
        "{page}"
    );
    assert!(page.contains("deadline 2012-09-01"), "{page}");
    assert!(page.contains(&format!("{path}/invite.ics")));

    // Times in the meeting's zone and in UTC, each with its RFC 3339 instant.
    assert!(
        page.contains(
            "<time datetime=\"2012-07-04T12:30:00Z\">2012-07-04 14:30</time>–<time class=\"end\" \
             datetime=\"2012-07-04T15:30:00Z\">17:30</time> Europe/Zurich <span class=\"meta\">(CEST, UTC+02:00)</span>"
        ),
        "{page}"
    );
    assert!(
        page.contains(
            "<time datetime=\"2012-07-04T12:30:00Z\">2012-07-04 12:30</time>–<time class=\"end\" \
             datetime=\"2012-07-04T15:30:00Z\">15:30</time> UTC"
        ),
        "{page}"
    );

    // No zone chosen: the script fills in the browser's, allowed by its hash alone.
    assert!(page.contains(&format!("<script>{}</script>", zone::SCRIPT)));
    assert!(page.contains("class=\"browser-zone\" hidden"));
    let policy = csp(&h);
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(zone::SCRIPT));
    assert!(
        policy.contains(&format!("script-src 'sha256-{hash}'")),
        "{policy}"
    );
    assert!(policy.contains("default-src 'none'") && !policy.contains("unsafe-inline"));

    // A member of another list reads the meeting (the register is for any member) but
    // not its access code.
    let carol = site.cookie(CAROL);
    let (s, _, page) = get(&site, &path, Some(&carol)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!page.contains(ACCESS_CODE), "{page}");
    assert!(page.contains("for members of the list jca-sghn"), "{page}");

    // The index: a past meeting, with its status and times.
    let (s, _, page) = get(&site, "/meetings", Some(&alice)).await;
    assert_eq!(s, StatusCode::OK);
    let past = page.split("<h2>Past</h2>").nth(1).unwrap();
    assert!(past.contains(&format!("href=\"{path}\"")), "{page}");
    assert!(past.contains("planned"));
    assert!(past.contains("2012-07-04 14:30"));
    assert!(!page.contains(ACCESS_CODE));
    assert_eq!(
        get(&site, "/meetings/999", Some(&alice)).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_public_register_never_shows_the_access_code_to_anonymous_visitors() {
    let site = Site::with("http://concord.test", "archive_access = \"public\"").await;
    let m = add(&site, geneva()).await;
    let path = format!("/meetings/{}", m.id);
    let (s, _, page) = get(&site, &path, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!page.contains(ACCESS_CODE), "{page}");
    assert!(page.contains("sign in</a> to see it"), "{page}");
    let (s, _, ics) = get(&site, &format!("{path}/invite.ics"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!ics.contains(ACCESS_CODE));
    let (s, v) = api(&site, &format!("/api/v1{path}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.get("access_code").is_none(), "{v}");
    assert_eq!(v["has_access_code"], true);
    assert!(!v.to_string().contains(ACCESS_CODE));
}

#[tokio::test]
async fn times_in_a_zone_the_reader_chooses() {
    let site = Site::new().await;
    let m = add(&site, geneva()).await;
    let path = format!("/meetings/{}", m.id);
    let alice = site.cookie(ALICE);
    let new_york = "Your zone: <time datetime=\"2012-07-04T12:30:00Z\">2012-07-04 08:30</time>–\
                    <time class=\"end\" datetime=\"2012-07-04T15:30:00Z\">11:30</time> \
                    America/New_York <span class=\"meta\">(EDT, UTC-04:00)</span>";

    let (s, h, page) = get(&site, &format!("{path}?tz=America/New_York"), Some(&alice)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains(new_york), "{page}");
    // The meeting's zone and UTC stay.
    assert!(page.contains("2012-07-04 14:30</time>"));
    assert!(page.contains("15:30</time> UTC"));
    let cookies = set_cookies(&h);
    assert!(
        cookies.iter().any(|c| c.starts_with("tz=America/New_York;")
            && c.contains("SameSite=Lax")
            && c.contains("Path=/")),
        "{cookies:?}"
    );
    // A chosen zone needs no script.
    assert!(!page.contains("<script"));
    assert!(!csp(&h).contains("script-src"), "{}", csp(&h));
    assert!(page.contains("value=\"America/New_York\""));

    // The cookie remembers it, on every meeting page.
    let both = format!("{alice}; {}=America/New_York", zone::COOKIE);
    let (s, h, page) = get(&site, &path, Some(&both)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains(new_york), "{page}");
    assert!(set_cookies(&h).is_empty());
    let (_, _, index) = get(&site, "/meetings", Some(&both)).await;
    assert!(index.contains(new_york), "{index}");
    let (_, _, report) = get(&site, &format!("{path}/report"), Some(&both)).await;
    assert!(report.contains(new_york), "{report}");

    // Across midnight: Tokyo shows both dates.
    let (_, _, page) = get(&site, &format!("{path}?tz=Asia/Tokyo"), Some(&alice)).await;
    assert!(
        page.contains(
            ">2012-07-04 21:30</time>–<time class=\"end\" datetime=\"2012-07-04T15:30:00Z\">2012-07-05 00:30</time> Asia/Tokyo"
        ),
        "{page}"
    );

    // An unknown zone is refused with a message; the page still shows the times.
    let (s, h, page) = get(&site, &format!("{path}?tz=Mars/Olympus"), Some(&both)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(page.contains("is not a time zone"), "{page}");
    assert!(page.contains("2012-07-04 14:30</time>"));
    assert!(page.contains(new_york), "the remembered zone stays");
    assert!(set_cookies(&h).is_empty());
    let (s, _, page) = get(
        &site,
        &format!("{path}?tz=%3Cscript%3Ealert(1)%3C/script%3E"),
        Some(&alice),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    no_foreign_markup(&page);
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );

    // An empty choice forgets the zone; the browser's is filled in again.
    let (s, h, page) = get(&site, &format!("{path}?tz="), Some(&both)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        set_cookies(&h)
            .iter()
            .any(|c| c.starts_with("tz=;") && c.contains("Max-Age=0"))
    );
    assert!(!page.contains("Your zone:"));
    assert!(page.contains("<script>"));
}

/// The text/calendar part of a mail.
fn calendar_part(raw: &[u8]) -> String {
    use mail_parser::{MessageParser, MimeHeaders};
    let m = MessageParser::new().parse(raw).unwrap();
    for part in &m.parts {
        if let Some(ct) = part.content_type()
            && ct.ctype() == "text"
            && ct.subtype() == Some("calendar")
        {
            return String::from_utf8(part.contents().to_vec()).unwrap();
        }
    }
    panic!("no text/calendar part")
}

fn prop<'a>(c: &'a Component<'a>, name: &str) -> &'a str {
    c.properties
        .iter()
        .find(|p| p.name.as_str() == name)
        .map(|p| p.val.as_str())
        .unwrap_or_else(|| panic!("{} has no {name}", c.name))
}

fn tzid<'a>(c: &'a Component<'a>, name: &str) -> Option<&'a str> {
    c.properties
        .iter()
        .find(|p| p.name.as_str() == name)?
        .params
        .iter()
        .find(|p| p.key.as_str() == "TZID")
        .and_then(|p| p.val.as_ref())
        .map(|v| v.as_str())
}

#[tokio::test]
async fn the_invitation_is_the_one_the_list_was_sent() {
    let site = Site::new().await;
    let m = add(&site, geneva()).await;
    let path = format!("/meetings/{}/invite.ics", m.id);
    let alice = site.cookie(ALICE);
    let sent_at = Utc.with_ymd_and_hms(2012, 6, 20, 9, 15, 0).unwrap();
    meeting::announce(&site.pool, &site.state.config, m.id, false, sent_at)
        .await
        .unwrap();
    let mails = site.outbox_to("jca-sghn@lists.example.org").await;
    assert_eq!(mails.len(), 1);
    let mailed = calendar_part(mails[0].as_bytes());

    let (s, h, _) = site.request("GET", &path, Some(&alice), None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.get(header::CONTENT_TYPE).unwrap(),
        "text/calendar; charset=utf-8"
    );
    let (_, _, body) = site.request("GET", &path, Some(&alice), None, None).await;
    let ics = String::from_utf8(body).unwrap();
    assert_eq!(ics, mailed, "the same object as the announcement");
    assert!(!ics.contains(ACCESS_CODE));

    // Parsed back: UID, DTSTART with TZID, SEQUENCE as the database has them.
    let db: (String, String, String, i64) =
        sqlx::query_as("SELECT uid, start_local, tz, sequence FROM meetings WHERE id = ?")
            .bind(m.id)
            .fetch_one(&site.pool)
            .await
            .unwrap();
    let unfolded = unfold(&ics);
    let cal = read_calendar(&unfolded).unwrap();
    assert_eq!(
        cal.properties
            .iter()
            .find(|p| p.name.as_str() == "METHOD")
            .unwrap()
            .val
            .as_str(),
        "REQUEST"
    );
    let ev = cal
        .components
        .iter()
        .find(|c| c.name.as_str() == "VEVENT")
        .unwrap();
    let vtz = cal
        .components
        .iter()
        .find(|c| c.name.as_str() == "VTIMEZONE")
        .unwrap();
    let start = NaiveDateTime::parse_from_str(&db.1, "%Y-%m-%dT%H:%M:%S").unwrap();
    assert_eq!(prop(ev, "UID"), db.0);
    assert_eq!(
        prop(ev, "DTSTART"),
        start.format("%Y%m%dT%H%M%S").to_string()
    );
    assert_eq!(tzid(ev, "DTSTART"), Some(db.2.as_str()));
    assert_eq!(tzid(ev, "DTEND"), Some(db.2.as_str()));
    assert_eq!(prop(vtz, "TZID"), db.2);
    assert_eq!(prop(ev, "SEQUENCE"), db.3.to_string());
    assert_eq!(prop(ev, "DTSTAMP"), "20120620T091500Z");
    use icalendar::{CalendarDateTime, Component as _, DatePerhapsTime};
    let typed: icalendar::Calendar = ics.parse().unwrap();
    let e = typed.events().next().unwrap();
    assert_eq!(e.get_uid(), Some(db.0.as_str()));
    assert_eq!(
        e.get_start(),
        Some(DatePerhapsTime::DateTime(CalendarDateTime::WithTimezone {
            date_time: start,
            tzid: db.2.clone(),
        }))
    );

    // Cancelled: the CANCEL at the higher SEQUENCE.
    meeting::cancel(&site.pool, &site.state.config, m.id, None, true, sent_at)
        .await
        .unwrap();
    let (_, _, body) = site.request("GET", &path, Some(&alice), None, None).await;
    let ics = String::from_utf8(body).unwrap();
    let unfolded = unfold(&ics);
    let cal = read_calendar(&unfolded).unwrap();
    let ev = cal
        .components
        .iter()
        .find(|c| c.name.as_str() == "VEVENT")
        .unwrap();
    assert!(ics.contains("METHOD:CANCEL\r\n"), "{ics}");
    assert_eq!(prop(ev, "STATUS"), "CANCELLED");
    assert_eq!(prop(ev, "UID"), db.0);
    assert_eq!(prop(ev, "SEQUENCE"), "1");
    let (_, _, page) = get(&site, &format!("/meetings/{}", m.id), Some(&alice)).await;
    assert!(page.contains("cancelled"));
}

#[tokio::test]
async fn the_report_links_the_statement_pages() {
    let site = Site::new().await;
    let m = add(&site, geneva()).await;
    let alice = site.cookie(ALICE);
    let (s, _, page) = get(&site, &format!("/meetings/{}/report", m.id), Some(&alice)).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(
        page.contains("Meeting report: JCA-SG&amp;HN meeting, Geneva"),
        "{page}"
    );
    assert!(
        page.contains(&format!("href=\"/ls/statement/{}\"", site.statement)),
        "{page}"
    );
    assert!(
        !page.contains("/list/jca-sghn/message/"),
        "not the archive's links"
    );
    assert!(!page.contains(ACCESS_CODE));
    assert!(page.contains("<div class=\"report\">"));
}

#[tokio::test]
async fn the_api_lists_and_shows_meetings_with_a_token() {
    let site = Site::new().await;
    let m = add(&site, geneva()).await;
    let later = add(
        &site,
        NewMeeting {
            title: "Teleconference".into(),
            start: Some(local("2030-03-10 10:00")),
            end: Some(local("2030-03-10 11:30")),
            timezone: Some("America/New_York".into()),
            remote_url: Some("https://meet.example.org/jca".into()),
            ..NewMeeting::default()
        },
    )
    .await;

    let (s, v) = api(&site, "/api/v1/meetings", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(v["error"].is_string());
    assert_eq!(
        api(&site, "/api/v1/meetings", Some("cw_bogus")).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (_, alice) = auth::create_api_token(&site.pool, ALICE, None)
        .await
        .unwrap();
    let (s, v) = api(&site, "/api/v1/meetings", Some(&alice)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], m.id);
    assert_eq!(list[0]["uid"], m.uid);
    assert_eq!(list[0]["start"], "2012-07-04T14:30:00");
    assert_eq!(list[0]["start_utc"], "2012-07-04T12:30:00Z");
    assert_eq!(list[0]["timezone"], "Europe/Zurich");
    assert_eq!(
        list[0]["url"],
        format!("http://concord.test/meetings/{}", m.id)
    );
    assert_eq!(list[1]["id"], later.id);
    assert!(!v.to_string().contains(ACCESS_CODE));
    let (s, v) = api(
        &site,
        "/api/v1/meetings?status=planned&since=2020-01-01",
        Some(&alice),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        api(&site, "/api/v1/meetings?status=maybe", Some(&alice))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    let one = format!("/api/v1/meetings/{}", m.id);
    let (s, v) = api(&site, &one, Some(&alice)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["access_code"], ACCESS_CODE,
        "a member of the meeting's list"
    );
    let received = v["agenda"]["received"].as_array().unwrap();
    assert_eq!(received[0]["number"], site.statement);
    assert_eq!(
        received[0]["url"],
        format!("http://concord.test/ls/statement/{}", site.statement)
    );
    assert_eq!(v["agenda"]["until"], "2012-07-04T12:30:00Z");

    let (_, carol) = auth::create_api_token(&site.pool, CAROL, None)
        .await
        .unwrap();
    let (s, v) = api(&site, &one, Some(&carol)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.get("access_code").is_none(), "{v}");
    assert_eq!(api(&site, &one, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api(&site, "/api/v1/meetings/999", Some(&alice)).await.0,
        StatusCode::NOT_FOUND
    );

    // The index: the later meeting is upcoming.
    let (_, _, page) = get(&site, "/meetings", Some(&site.cookie(ALICE))).await;
    let (upcoming, past) = page.split_once("<h2>Past</h2>").unwrap();
    assert!(upcoming.contains("Teleconference"));
    assert!(past.contains("JCA-SG&amp;HN meeting, Geneva"));
}

#[tokio::test]
async fn hostile_titles_places_and_links_are_escaped() {
    let site = Site::new().await;
    let m = add(
        &site,
        NewMeeting {
            title: "<script>alert('title')</script> & \"plenary\"".into(),
            start: Some(local("2012-07-04 14:30")),
            end: Some(local("2012-07-04 17:30")),
            timezone: Some("Europe/Zurich".into()),
            place: Some("<img src=x onerror=alert('place')> room".into()),
            remote_url: Some("javascript:alert('link')".into()),
            dial_in: Some("<b>dial</b>".into()),
            notes: Some("</pre><script>alert('notes')</script>".into()),
            ..NewMeeting::default()
        },
    )
    .await;
    let alice = site.cookie(ALICE);
    for p in [
        format!("/meetings/{}", m.id),
        format!("/meetings/{}?tz=America/New_York", m.id),
        format!("/meetings/{}/report", m.id),
        "/meetings".to_string(),
    ] {
        let (s, _, page) = get(&site, &p, Some(&alice)).await;
        assert_eq!(s, StatusCode::OK, "{p}");
        no_foreign_markup(&page);
        assert!(
            page.contains("&lt;script&gt;alert(") || page.contains("&lt;script&gt;"),
            "{p}: {page}"
        );
    }
    let (_, _, page) = get(&site, &format!("/meetings/{}", m.id), Some(&alice)).await;
    assert!(page.contains("&lt;img src=x onerror=alert("), "{page}");
    assert!(page.contains("&lt;b&gt;dial&lt;/b&gt;"));
    assert!(
        page.contains("javascript:alert("),
        "shown as text, not linked"
    );
}
