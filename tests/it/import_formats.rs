//! Import of every input form, and what happens to input that is not mail.

use std::io::Write;

use concord::archive::{import, mbox, views};

use crate::common::{Archive, corpus, mail};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn gzip_mbox_imports_like_the_plain_one() {
    let plain = std::fs::read(corpus().join("threads/notmuch-list-2009-default.mbox")).unwrap();
    let a = Archive::new().await;
    let f = a.dir.path().join("list.mbox.gz");
    std::fs::write(&f, gzip(&plain)).unwrap();
    let s = a.import(&[f], Some("l")).await;
    assert_eq!(s.read, 53);
    assert_eq!(s.imported + s.duplicates, 53);
    // The same archive uncompressed adds nothing.
    let g = a.dir.path().join("list.mbox");
    std::fs::write(&g, &plain).unwrap();
    let s = a.import(&[g], Some("l")).await;
    assert_eq!(s.imported, 0);
    assert_eq!(s.duplicates, 53);
}

#[tokio::test]
async fn truncated_gzip_keeps_what_was_read_and_quarantines_the_rest() {
    let plain = std::fs::read(corpus().join("threads/notmuch-list-2009-default.mbox")).unwrap();
    let gz = gzip(&plain);
    let a = Archive::new().await;
    let f = a.dir.path().join("cut.mbox.gz");
    std::fs::write(&f, &gz[..gz.len() * 2 / 3]).unwrap();
    let s = a.import(&[f], None).await;
    assert!(s.imported > 10, "{s:?}");
    assert_eq!(s.quarantined.len(), 1, "{s:?}");
    assert!(s.quarantined[0].reason.contains("read error"), "{s:?}");
    let q = views::quarantine(&a.pool).await.unwrap();
    assert_eq!(q.len(), 1);
    assert!(q[0].origin.contains("cut.mbox.gz#"));
}

#[tokio::test]
async fn crlf_mbox_keeps_crlf_bytes() {
    let m1 = b"From: a@example.org\r\nSubject: one\r\nMessage-ID: <c1@x>\r\n\r\nFrom the start\r\nbody\r\n";
    let m2 = b"From: b@example.org\r\nSubject: two\r\nMessage-ID: <c2@x>\r\n\r\nsecond\r\n";
    let mut data = Vec::new();
    data.extend_from_slice(b"From a@example.org Mon Jan  2 00:00:00 2012\r\n");
    data.extend_from_slice(b"From: a@example.org\r\nSubject: one\r\nMessage-ID: <c1@x>\r\n\r\n>From the start\r\nbody\r\n\r\n");
    data.extend_from_slice(b"From b@example.org Mon Jan  2 00:00:00 2012\r\n");
    data.extend_from_slice(m2);
    data.extend_from_slice(b"\r\n");
    let a = Archive::new().await;
    let s = a.import_bytes(&[("crlf.mbox", &data)]).await;
    assert_eq!(s.imported, 2);
    let id = views::message_row(&a.pool, "c1@x").await.unwrap();
    assert_eq!(views::raw(&a.pool, id).await.unwrap(), m1.to_vec());
    let id = views::message_row(&a.pool, "<c2@x>").await.unwrap();
    assert_eq!(views::raw(&a.pool, id).await.unwrap(), m2.to_vec());
}

#[tokio::test]
async fn mboxo_quoting_is_selectable() {
    let data = b"From x Mon Jan  2 00:00:00 2012\nMessage-ID: <o@x>\nSubject: o\n\n>>From quoted twice\n\n";
    let a = Archive::new().await;
    let f = a.dir.path().join("o.mbox");
    std::fs::write(&f, data).unwrap();
    let mut opts = Archive::options(None);
    opts.flavor = mbox::Flavor::Mboxo;
    import::run(&a.pool, &[f], opts).await.unwrap();
    let id = views::message_row(&a.pool, "o@x").await.unwrap();
    let raw = views::raw(&a.pool, id).await.unwrap();
    assert!(
        raw.ends_with(b"\n>>From quoted twice\n"),
        "mboxo leaves >>From alone"
    );
}

#[tokio::test]
async fn maildir_with_subfolders() {
    let a = Archive::new().await;
    let md = a.dir.path().join("Maildir");
    for sub in ["cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    let date = "Mon, 2 Jan 2012 10:00:00 +0000";
    std::fs::write(
        md.join("cur/1.host:2,S"),
        mail("md1@x", &[], date, "one", "x"),
    )
    .unwrap();
    std::fs::write(
        md.join("new/2.host"),
        mail("md2@x", &["md1@x"], date, "Re: one", "y"),
    )
    .unwrap();
    std::fs::write(
        md.join("tmp/3.host"),
        mail("partial@x", &[], date, "tmp", "z"),
    )
    .unwrap();
    std::fs::write(
        md.join(".Sent/cur/4.host:2,S"),
        mail("md4@x", &[], date, "sent", "w"),
    )
    .unwrap();
    let s = a.import(&[md], Some("l")).await;
    assert_eq!(s.imported, 3, "tmp/ is not delivered mail: {s:?}");
    assert_eq!(a.thread_of("md2@x").await, a.thread_of("md1@x").await);
    assert!(views::message_row(&a.pool, "partial@x").await.is_err());
}

#[tokio::test]
async fn bad_input_is_quarantined_never_dropped() {
    let a = Archive::new().await;
    let mut opts = Archive::options(Some("l"));
    opts.max_message_bytes = 2_000;
    let d = a.dir.path().join("in");
    std::fs::create_dir(&d).unwrap();
    let big = mail(
        "big@x",
        &[],
        "Mon, 2 Jan 2012 10:00:00 +0000",
        "big",
        &"x".repeat(5_000),
    );
    std::fs::write(d.join("big.eml"), &big).unwrap();
    std::fs::write(d.join("junk.eml"), b"\x00\x01\x02\xff not mail at all\n").unwrap();
    std::fs::write(d.join("empty.eml"), b"").unwrap();
    std::fs::write(
        d.join("pre.mbox"),
        b"stray text\nFrom x Mon Jan  2 00:00:00 2012\nMessage-ID: <ok@x>\nSubject: ok\n\nfine\n\n",
    )
    .unwrap();
    let s = import::run(&a.pool, &[d, a.dir.path().join("missing.mbox")], opts)
        .await
        .unwrap();
    assert_eq!(s.imported, 1);
    assert_eq!(s.errors.len(), 1, "the missing path is reported");
    let reasons: Vec<String> = s.quarantined.iter().map(|q| q.reason.clone()).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("too large")));
    assert!(reasons.iter().any(|r| r.contains("no header section")));
    assert!(reasons.iter().any(|r| r.contains("empty message")));
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("before the first mbox separator"))
    );
    // Each quarantined message's bytes are kept exactly.
    let big_row = s
        .quarantined
        .iter()
        .find(|q| q.reason.contains("too large"))
        .unwrap();
    assert_eq!(views::raw(&a.pool, big_row.id).await.unwrap(), big);
    // And none of them is searchable or threaded.
    let c = views::counts(&a.pool).await.unwrap();
    assert_eq!((c.messages, c.quarantined), (1, 4));
}

#[tokio::test]
async fn synthetic_message_ids_are_stable() {
    let raw =
        b"From: a@example.org\nSubject: no id\nDate: Mon, 2 Jan 2012 10:00:00 +0000\n\nhello\n";
    let a = Archive::new().await;
    a.import_bytes(&[("a.eml", raw)]).await;
    let b = Archive::new().await;
    b.import_bytes(&[("zzz.eml", raw)]).await;
    let get = |p: concord::db::SqlitePool| async move {
        sqlx::query_as::<_, (String, bool)>("SELECT message_id, synthetic_id FROM messages")
            .fetch_one(&p)
            .await
            .unwrap()
    };
    let (ma, sa) = get(a.pool.clone()).await;
    let (mb, _) = get(b.pool.clone()).await;
    assert!(sa);
    assert_eq!(ma, mb);
    assert_eq!(
        ma,
        concord::parse::synthetic_message_id(&concord::parse::content_hash(raw))
    );
}

#[tokio::test]
async fn same_bytes_under_a_second_list_join_it_without_a_copy() {
    let a = Archive::new().await;
    let f = corpus().join("threads/notmuch-threading-edgecases.mbox");
    a.import(std::slice::from_ref(&f), Some("one")).await;
    let s = a.import(&[f], Some("two")).await;
    assert_eq!(s.imported, 0);
    let in_two: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM message_lists WHERE list = 'two'")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    assert_eq!(in_two, 12);
    let t = views::threads(&a.pool, Some("two"), None).await.unwrap();
    assert_eq!(t.len(), 3);
}
