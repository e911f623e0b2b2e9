//! The whole shared corpus of real mail through the archive: nothing lost, bytes exact,
//! search finds what is there, threads follow the References.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use concord::archive::{export, mbox, search, views};
use concord::parse::content_hash;

use crate::common::{Archive, corpus};

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no .{ext} files in corpus/{dir}");
    v
}

fn read_mbox(bytes: &[u8]) -> Vec<mbox::Item> {
    mbox::Reader::new(bytes, mbox::Flavor::Mboxrd).collect()
}

/// Every input the corpus holds: the mbox archives and the .eml files.
fn inputs() -> Vec<PathBuf> {
    let mut v = files("threads", "mbox");
    v.extend(files("mime", "eml"));
    v.extend(files("bounces", "eml"));
    v
}

/// Messages in the corpus, counted without concord's reader: `From mboxrd@z` separator
/// lines in the archives (the corpus writer's convention), one per .eml file.
fn count_in() -> u64 {
    let mut n = 0;
    for p in inputs() {
        if p.extension().unwrap() == "mbox" {
            let b = std::fs::read(&p).unwrap();
            n += b
                .split(|&c| c == b'\n')
                .filter(|l| l.starts_with(b"From mboxrd@z "))
                .count() as u64;
        } else {
            n += 1;
        }
    }
    n
}

async fn imported() -> Archive {
    let a = Archive::new().await;
    let s = a.import(&inputs(), Some("corpus")).await;
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    a
}

#[tokio::test]
async fn nothing_is_lost_and_reimport_adds_nothing() {
    let a = Archive::new().await;
    let s = a.import(&inputs(), Some("corpus")).await;
    let n_in = count_in();
    assert_eq!(s.read, n_in, "every message in the corpus was read");
    let q = s.quarantined.len() as u64;
    assert_eq!(s.imported + s.duplicates + q, n_in);
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM raw_messages")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    assert_eq!(
        stored as u64,
        s.imported + q,
        "count in = stored + duplicates"
    );
    assert!(s.imported > 3000, "{s:?}");
    // Quarantined messages are stored raw and listed with their reason.
    let listed = views::quarantine(&a.pool).await.unwrap();
    assert_eq!(listed.len() as u64, q);
    assert!(
        listed
            .iter()
            .all(|x| !x.reason.is_empty() && !x.origin.is_empty())
    );
    // The Outlook .msg file (binary, not RFC 5322) is among them.
    assert!(
        listed
            .iter()
            .any(|x| x.origin.ends_with("spamscope-mail_outlook_1.eml")
                && x.reason.contains("no header section")),
        "{listed:?}"
    );

    let again = a.import(&inputs(), Some("corpus")).await;
    assert_eq!(again.imported, 0);
    assert!(again.quarantined.is_empty());
    assert_eq!(again.duplicates, n_in);
    let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM raw_messages")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    assert_eq!(after, stored);
}

#[tokio::test]
async fn stored_bytes_are_the_corpus_bytes() {
    let a = imported().await;
    let raw_by_hash = |h: [u8; 32]| {
        let pool = a.pool.clone();
        async move {
            sqlx::query_scalar::<_, Vec<u8>>("SELECT raw FROM raw_messages WHERE hash = ?")
                .bind(&h[..])
                .fetch_optional(&pool)
                .await
                .unwrap()
        }
    };
    // .eml files: the file's bytes exactly, less an mbox envelope line at the top.
    let mut enveloped = 0;
    for p in files("mime", "eml")
        .into_iter()
        .chain(files("bounces", "eml"))
    {
        let mut b = std::fs::read(&p).unwrap();
        if b.starts_with(b"From ") {
            enveloped += 1;
            let nl = b.iter().position(|&c| c == b'\n').unwrap();
            b.drain(..=nl);
        }
        let stored = raw_by_hash(content_hash(&b)).await;
        assert_eq!(stored.as_deref(), Some(&b[..]), "{}", p.display());
    }
    assert!(enveloped > 50, "{enveloped}");
    // mbox archives: the messages, written back with the file's own separator lines and
    // mboxrd quoting, give the file again byte for byte; and each one is stored.
    for p in files("threads", "mbox") {
        let file = std::fs::read(&p).unwrap();
        let seps: Vec<&[u8]> = file
            .split_inclusive(|&c| c == b'\n')
            .filter(|l| l.starts_with(b"From mboxrd@z "))
            .collect();
        let mut rebuilt = Vec::with_capacity(file.len());
        let items = read_mbox(&file);
        assert_eq!(items.len(), seps.len(), "{}", p.display());
        for (sep, item) in seps.iter().zip(&items) {
            let mbox::Item::Message(m) = item else {
                panic!("{}: {item:?}", p.display())
            };
            assert_eq!(raw_by_hash(content_hash(m)).await.as_ref(), Some(m));
            let mut one = Vec::new();
            mbox::write_message(&mut one, "", 0, m).unwrap();
            let body = &one[one.iter().position(|&c| c == b'\n').unwrap() + 1..];
            rebuilt.extend_from_slice(sep);
            rebuilt.extend_from_slice(body);
        }
        assert!(rebuilt == file, "{} does not round-trip", p.display());
    }
}

#[tokio::test]
async fn export_round_trips_byte_exact() {
    let a = imported().await;
    let mut out = Vec::new();
    let n = export::mboxrd(&a.pool, Some("corpus"), None, &mut out)
        .await
        .unwrap();
    let stored: HashMap<[u8; 32], Vec<u8>> = sqlx::query_as::<_, (Vec<u8>, Vec<u8>)>(
        "SELECT r.hash, r.raw FROM raw_messages r JOIN messages m ON m.id = r.id
         WHERE m.quarantine IS NULL",
    )
    .fetch_all(&a.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(h, r)| (h.try_into().unwrap(), r))
    .collect();
    assert_eq!(n as usize, stored.len());
    let back = read_mbox(&out);
    assert_eq!(back.len(), stored.len());
    let mut seen = HashSet::new();
    for item in back {
        let mbox::Item::Message(m) = item else {
            panic!("{item:?}")
        };
        let original = match stored.get(&content_hash(&m)) {
            Some(o) => o.clone(),
            // mbox cannot carry a message without a final line break: export adds one.
            None => {
                let trimmed = &m[..m.len() - 1];
                let o = stored
                    .get(&content_hash(trimmed))
                    .expect("exported message matches a stored one");
                assert!(!o.ends_with(b"\n"));
                o.clone()
            }
        };
        assert!(seen.insert(content_hash(&original)), "exported twice");
    }
    assert_eq!(seen.len(), stored.len());

    // Re-importing the export into an empty archive gives the same messages.
    let b = Archive::new().await;
    let f = b.dir.path().join("export.mbox");
    std::fs::write(&f, &out).unwrap();
    let s = b.import(&[f], None).await;
    assert_eq!(s.imported as usize, stored.len());
    assert!(s.quarantined.is_empty());
}

async fn hits(a: &Archive, q: &str) -> Vec<search::Hit> {
    search::search(&a.pool, q, 200, 0)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

fn mids(h: &[search::Hit]) -> HashSet<&str> {
    h.iter().map(|h| h.message_id.as_str()).collect()
}

#[tokio::test]
async fn search_finds_known_words_in_known_messages() {
    let a = imported().await;

    let h = hits(&a, r#"subject:"maildir storage""#).await;
    assert!(mids(&h).contains("20091117190054.GU3165@dottiness.seas.harvard.edu"));
    assert!(
        h.iter()
            .all(|h| h.subject.to_lowercase().contains("maildir storage"))
    );

    // Body text of a quoted-printable multipart/alternative message.
    let h = hits(&a, r#""RX/TX states are switched""#).await;
    assert!(
        mids(&h).contains("CADjF3Pzv8h28VBnR4C1dTdmzYx6XqNThjn4jL36mj-fZ-_WyeA@mail.gmail.com"),
        "{h:?}"
    );
    assert!(
        h[0].snippet.contains('['),
        "snippet highlights: {}",
        h[0].snippet
    );

    // Encoded-word display names, diacritics folded: "Vít Ondruch" found as "vit".
    let h = hits(&a, "from:vit from:ondruch").await;
    assert!(!h.is_empty());
    assert!(h.iter().all(|h| h.from.contains("Ondruch")), "{h:?}");

    // Ranking: a subject match ranks above a body-only mention.
    let h = hits(&a, "freebsd").await;
    assert!(
        h[0].subject.to_lowercase().contains("freebsd"),
        "{:?}",
        h[0]
    );

    // Filters.
    let h = hits(&a, "list:corpus date:2021-05-01..2021-05-31").await;
    assert!(h.len() > 20);
    assert!(h.iter().all(|h| {
        let d = h.date.unwrap();
        (1_619_827_200..1_622_505_600).contains(&d)
    }));
    assert!(hits(&a, "list:nosuchlist").await.is_empty());
    let h = hits(&a, "has:attachment patch").await;
    assert!(!h.is_empty());
    for x in &h {
        let n: i64 = sqlx::query_scalar("SELECT attachment_count FROM messages WHERE id = ?")
            .bind(x.id)
            .fetch_one(&a.pool)
            .await
            .unwrap();
        assert!(n > 0);
    }

    // OR, and exclusion.
    let maildir = mids(&hits(&a, "subject:maildir").await).len();
    let freebsd = mids(&hits(&a, "subject:freebsd").await).len();
    let either = hits(&a, "subject:maildir OR subject:freebsd").await;
    assert_eq!(mids(&either).len(), maildir + freebsd);
    let without = hits(&a, "subject:maildir -storage").await;
    assert!(without.len() < maildir);
    assert!(
        without
            .iter()
            .all(|h| !h.subject.to_lowercase().contains("storage"))
    );
}

#[tokio::test]
async fn threads_follow_the_references() {
    let a = imported().await;
    // A known thread, its members found by reading the References by hand.
    let members = [
        "20091117190054.GU3165@dottiness.seas.harvard.edu",
        "87iqd9rn3l.fsf@vertex.dottedmag",
        "20091117203301.GV3165@dottiness.seas.harvard.edu",
        "87fx8can9z.fsf@vertex.dottedmag",
        "yunaayketfm.fsf@aiko.keithp.com",
        "20091118005040.GA25380@dottiness.seas.harvard.edu",
        "87ocn0qh6d.fsf@yoom.home.cworth.org",
    ];
    let t = a.thread_of(members[0]).await;
    for m in members {
        assert_eq!(a.thread_of(m).await, t, "{m}");
    }
    let count: i64 = sqlx::query_scalar("SELECT message_count FROM threads WHERE id = ?")
        .bind(t)
        .fetch_one(&a.pool)
        .await
        .unwrap();
    assert_eq!(count, 7);
    assert_eq!(a.parent_of(members[0]).await, None);

    // Everywhere: a message is in the thread of every archived message it references,
    // and its parent is the last id it references when that message is archived.
    let rows: Vec<(String, String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT message_id, refs, in_reply_to, thread_id, parent_mid FROM messages
         WHERE quarantine IS NULL",
    )
    .fetch_all(&a.pool)
    .await
    .unwrap();
    let thread: HashMap<&str, i64> = rows.iter().map(|r| (r.0.as_str(), r.3)).collect();
    let parents: HashMap<&str, &str> = rows
        .iter()
        .filter_map(|r| Some((r.0.as_str(), r.4.as_deref()?)))
        .collect();
    fn ancestors<'a>(parents: &HashMap<&'a str, &'a str>, mut x: &'a str) -> HashSet<&'a str> {
        let mut seen = HashSet::new();
        while let Some(p) = parents.get(x) {
            if !seen.insert(*p) {
                break;
            }
            x = p;
        }
        seen
    }
    let mut checked = 0;
    let mut parents_checked = 0;
    for (mid, refs, irt, t, parent) in &rows {
        for r in refs.split_whitespace().chain(irt.split_whitespace()) {
            if let Some(rt) = thread.get(r) {
                assert_eq!(rt, t, "{mid} references {r}");
                checked += 1;
            }
        }
        let last = irt
            .split_whitespace()
            .next()
            .or_else(|| refs.split_whitespace().last());
        // Unless linking would make a loop (two messages that reference each other).
        if let Some(last) = last
            && thread.contains_key(last)
            && !ancestors(&parents, last).contains(mid.as_str())
        {
            assert_eq!(parent.as_deref(), Some(last), "parent of {mid}");
            parents_checked += 1;
        }
    }
    assert!(checked > 1000, "{checked}");
    assert!(parents_checked > 1000, "{parents_checked}");
}

#[tokio::test]
async fn notmuch_threading_edge_cases() {
    let a = Archive::new().await;
    let p = corpus().join("threads/notmuch-threading-edgecases.mbox");
    let s = a.import(&[p], None).await;
    assert_eq!(s.imported, 12);
    let partition = a.partition().await;
    assert_eq!(partition.len(), 3, "{partition:#?}");
    // Ghost root: a message whose References name a missing message still joins the
    // thread of the messages it shares references with, under its archived ancestor.
    let root = a.thread_of("000-real-root@example.org").await;
    for m in [
        "001-child@example.org",
        "001-fake-message-root@example.org",
        "001-grand-child@example.org",
        "001-grand-child2@example.org",
        "001-great-grand-child@example.org",
    ] {
        assert_eq!(a.thread_of(m).await, root, "{m}");
    }
    assert_eq!(
        a.parent_of("001-fake-message-root@example.org")
            .await
            .as_deref(),
        Some("001-child@example.org"),
        "the missing message's container is pruned and its child promoted"
    );
    assert_eq!(
        a.parent_of("001-great-grand-child@example.org")
            .await
            .as_deref(),
        Some("001-grand-child@example.org")
    );
    // In-Reply-To wins over a References list that disagrees with it.
    assert_eq!(
        a.parent_of("B01-grand-child@example.org").await.as_deref(),
        Some("B01-child@example.org")
    );
    assert_eq!(a.parent_of("B00-root@example.org").await, None);
    // Two replies that share only a missing ticket id form one thread with a ghost root.
    assert_eq!(
        a.thread_of("87bmc6lp3h.fsf@len.workgroup").await,
        a.thread_of("rt-4.2.8-6644-1530017064-1465.33575-215-0@xxxxxxx-xxxxxxxxxxxxxxxxx-xxxxxxxxx-xxxxxxxxx.de").await
    );
    let tree = views::thread(&a.pool, a.thread_of("87bmc6lp3h.fsf@len.workgroup").await)
        .await
        .unwrap();
    assert_eq!(tree.roots.len(), 1);
    assert!(tree.roots[0].ghost);
    assert_eq!(tree.roots[0].children.len(), 2);
}
