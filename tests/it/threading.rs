//! Threading through the database: arrival order does not matter, late messages merge
//! threads, subject grouping is a last resort that never merges unrelated threads.

use proptest::prelude::*;

use crate::common::{Archive, mail};

fn date(day: u32) -> String {
    // 2012-01-01 plus `day` days, as an RFC 5322 date.
    let d = chrono::NaiveDate::from_ymd_opt(2012, 1, 1).unwrap() + chrono::Days::new(day.into());
    d.format("%a, %d %b %Y 10:00:00 +0000").to_string()
}

#[tokio::test]
async fn unrelated_agenda_threads_never_merge() {
    let a = Archive::new().await;
    a.import_bytes(&[
        (
            "1",
            &mail(
                "agenda-may@x",
                &[],
                &date(120),
                "[jca-sghn] Agenda",
                "May meeting",
            ),
        ),
        (
            "2",
            &mail(
                "re-may@x",
                &[],
                &date(121),
                "Re: [jca-sghn] Agenda",
                "no refs",
            ),
        ),
        (
            "3",
            &mail(
                "agenda-jun@x",
                &[],
                &date(150),
                "[jca-sghn] Agenda",
                "June meeting",
            ),
        ),
        (
            "4",
            &mail(
                "re-jun@x",
                &[],
                &date(151),
                "AW: [jca-sghn] Agenda",
                "no refs",
            ),
        ),
        (
            "5",
            &mail("re-jun2@x", &[], &date(152), "SV: Agenda", "no refs"),
        ),
        (
            "6",
            &mail(
                "late@x",
                &[],
                &date(300),
                "Re: Agenda",
                "outside the window",
            ),
        ),
    ])
    .await;
    let may = a.thread_of("agenda-may@x").await;
    let jun = a.thread_of("agenda-jun@x").await;
    assert_ne!(may, jun);
    assert_eq!(a.thread_of("re-may@x").await, may);
    assert_eq!(a.thread_of("re-jun@x").await, jun);
    assert_eq!(a.thread_of("re-jun2@x").await, jun);
    let late = a.thread_of("late@x").await;
    assert_ne!(late, may);
    assert_ne!(late, jun);
    assert_eq!(
        a.parent_of("re-may@x").await.as_deref(),
        Some("agenda-may@x")
    );
}

#[tokio::test]
async fn a_reply_with_references_is_never_moved_by_its_subject() {
    let a = Archive::new().await;
    a.import_bytes(&[
        ("1", &mail("a@x", &[], &date(1), "Agenda", "")),
        ("2", &mail("b@x", &[], &date(2), "Minutes", "")),
        (
            "3",
            &mail(
                "c@x",
                &["b@x"],
                &date(3),
                "Re: Agenda",
                "replying to minutes",
            ),
        ),
    ])
    .await;
    assert_eq!(a.thread_of("c@x").await, a.thread_of("b@x").await);
    assert_ne!(a.thread_of("c@x").await, a.thread_of("a@x").await);
}

#[tokio::test]
async fn a_late_message_merges_two_threads() {
    let a = Archive::new().await;
    a.import_bytes(&[
        ("1", &mail("r1@x", &["root@x"], &date(2), "Re: plan", "")),
        ("2", &mail("r2@x", &["mid@x"], &date(3), "Re: plan", "")),
    ])
    .await;
    assert_ne!(a.thread_of("r1@x").await, a.thread_of("r2@x").await);
    let threads_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM threads")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    assert_eq!(threads_before, 2);
    a.import_bytes(&[("3", &mail("mid@x", &["root@x"], &date(1), "Re: plan", ""))])
        .await;
    let t = a.thread_of("r1@x").await;
    assert_eq!(a.thread_of("r2@x").await, t);
    assert_eq!(a.thread_of("mid@x").await, t);
    assert_eq!(a.parent_of("r2@x").await.as_deref(), Some("mid@x"));
    let threads_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM threads")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    assert_eq!(threads_after, 1);
}

/// A random small archive: Message-IDs from a pool, references into the pool and to
/// missing messages, reply and non-reply subjects, dates over most of a year.
fn arb_messages() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let subjects = prop::sample::select(vec![
        "Agenda",
        "Re: Agenda",
        "RE: [jca] Agenda",
        "Minutes",
        "Re: Minutes",
        "LS on smart grid",
        "Antw: LS on smart grid",
        "Fwd: Minutes",
    ]);
    let one = (
        prop::collection::vec(0u8..16, 0..4),
        subjects,
        0u32..300,
        any::<bool>(),
    );
    prop::collection::vec(one, 2..14).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (refs, subject, day, dup_id))| {
                // Ids 12..16 never exist as messages: ghosts.
                let refs: Vec<String> = refs.iter().map(|r| format!("m{r}@x")).collect();
                let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
                // Occasionally two different messages share a Message-ID.
                let mid = if dup_id && i > 0 {
                    format!("m{}@x", i - 1)
                } else {
                    format!("m{i}@x")
                };
                mail(&mid, &refs, &date(day), subject, &format!("body {i}"))
            })
            .collect()
    })
}

async fn partition_of(batches: &[Vec<Vec<u8>>]) -> Vec<Vec<String>> {
    let a = Archive::new().await;
    for batch in batches {
        let files: Vec<(String, &[u8])> = batch
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("{i:03}.eml"), m.as_slice()))
            .collect();
        let files: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        a.import_bytes(&files).await;
    }
    a.partition().await
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Importing the same messages in any order, in one import or several, gives the same
    /// partition into threads.
    #[test]
    fn thread_partition_does_not_depend_on_arrival_order(
        (msgs, shuffled, cut) in arb_messages()
            .prop_flat_map(|m| (Just(m.clone()), Just(m).prop_shuffle(), 0usize..14)),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let reference = rt.block_on(partition_of(std::slice::from_ref(&msgs)));
        let cut = cut.min(shuffled.len());
        let (first, second) = shuffled.split_at(cut);
        let other = rt.block_on(partition_of(&[first.to_vec(), second.to_vec()]));
        prop_assert_eq!(reference, other);
    }
}

/// Everything threading decides, to compare two archives: each message's thread (as the
/// set of Message-IDs it shares a thread with) and parent, the ghosts, and the thread rows.
async fn threading_state(
    a: &Archive,
) -> (Vec<Vec<String>>, Vec<(String, Option<String>)>, usize, i64) {
    let mut parents: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT message_id, parent_mid FROM messages WHERE quarantine IS NULL")
            .fetch_all(&a.pool)
            .await
            .unwrap();
    parents.sort();
    let ghosts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ghosts")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    let threads: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM threads")
        .fetch_one(&a.pool)
        .await
        .unwrap();
    (a.partition().await, parents, ghosts as usize, threads)
}

/// Threads one message at a time, as the daemon does.
async fn ingest_one_by_one(msgs: &[Vec<u8>]) -> Archive {
    let a = Archive::new().await;
    for raw in msgs {
        let p = concord::archive::store::Prepared::new(raw.clone(), "test".into(), u64::MAX);
        let mut tx = a.pool.begin().await.unwrap();
        let w = concord::archive::store::write(&mut tx, &p, Some("test"), 0)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        if let concord::archive::store::Written::Stored { id } = w {
            concord::archive::store::rethread_messages(&a.pool, 60, &[id])
                .await
                .unwrap();
        }
    }
    a
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Threading each arriving message incrementally gives exactly what recomputing the
    /// whole archive gives: same threads, same parents, same ghosts, same thread rows.
    #[test]
    fn incremental_threading_equals_full_recomputation(
        shuffled in arb_messages().prop_flat_map(|m| Just(m).prop_shuffle()),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (inc, full) = rt.block_on(async {
            let inc = ingest_one_by_one(&shuffled).await;
            let inc_state = threading_state(&inc).await;
            concord::archive::store::rethread(&inc.pool, 60).await.unwrap();
            (inc_state, threading_state(&inc).await)
        });
        prop_assert_eq!(inc, full);
    }
}
