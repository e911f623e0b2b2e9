//! Bounce scoring with an injected clock: one point per bouncing day, disable at the
//! threshold with notices, warnings, removal; bounce messages to LIST-bounces (DSN, VERP)
//! and 5xx replies at delivery all count.

use std::sync::Arc;

use concord::config::Config;
use concord::list::members;
use concord::list::scoring::Effect;
use concord::list::stage::Stage;

use crate::common::corpus;

const DAY: i64 = 86_400;
const T0: i64 = 1_700_000_000;

async fn stage() -> (tempfile::TempDir, Stage) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::from_toml(
        &format!(
            "[database]\nurl = \"sqlite://{}/c.db\"\n[[list]]\nname = \"jca\"\naddress = \"jca@lists.example.org\"\n",
            dir.path().display()
        ),
        std::path::Path::new("t"),
    )
    .unwrap();
    let pool = concord::db::open(&cfg.database.url).await.unwrap();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    for (a, r) in [
        ("owner@example.org", "owner"),
        ("userx@example.com", "member"),
        ("bob@example.net", "member"),
    ] {
        members::add(&mut tx, "jca", a, None, r, false)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    (dir, Stage::new(pool, Arc::new(cfg)))
}

async fn bounce(s: &Stage, addr: &str, at: i64) -> Effect {
    let list = s.config.list("jca").unwrap().clone();
    let mut tx = s.pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let e = s
        .record_bounce(&mut tx, &list, addr, None, "dsn", Some("5.1.1"), at)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    e
}

async fn queued_to(s: &Stage, addr: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox_recipients WHERE recipient = ?")
        .bind(addr)
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn score_disable_warn_remove() {
    let (_d, s) = stage().await;
    assert_eq!(
        bounce(&s, "userx@example.com", T0).await,
        Effect::Scored { score: 1 }
    );
    assert_eq!(
        bounce(&s, "userx@example.com", T0 + 60).await,
        Effect::SameDay { score: 1 },
        "once a day"
    );
    for day in 1..4 {
        assert_eq!(
            bounce(&s, "userx@example.com", T0 + day * DAY).await,
            Effect::Scored { score: day + 1 }
        );
    }
    assert_eq!(
        bounce(&s, "nobody@example.com", T0).await,
        Effect::NotMember
    );
    assert_eq!(
        bounce(&s, "userx@example.com", T0 + 4 * DAY).await,
        Effect::Disabled { score: 5 }
    );
    let m = members::get(&s.pool, "jca", "userx@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.delivery, "nomail");
    assert_eq!(
        queued_to(&s, "userx@example.com").await,
        1,
        "the member is told"
    );
    assert_eq!(
        queued_to(&s, "owner@example.org").await,
        1,
        "the owners are told"
    );
    // Warnings every 7 days; after the third, removal.
    assert_eq!(
        s.bounce_warnings(T0 + 5 * DAY).await.unwrap(),
        (0, 0),
        "not due yet"
    );
    assert_eq!(s.bounce_warnings(T0 + 11 * DAY).await.unwrap(), (1, 0));
    assert_eq!(s.bounce_warnings(T0 + 18 * DAY).await.unwrap(), (1, 0));
    assert_eq!(queued_to(&s, "userx@example.com").await, 3);
    assert_eq!(s.bounce_warnings(T0 + 25 * DAY).await.unwrap(), (0, 1));
    assert!(
        members::get(&s.pool, "jca", "userx@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(queued_to(&s, "owner@example.org").await, 2);
    // A stale score starts again.
    assert_eq!(
        bounce(&s, "bob@example.net", T0).await,
        Effect::Scored { score: 1 }
    );
    assert_eq!(
        bounce(&s, "bob@example.net", T0 + DAY).await,
        Effect::Scored { score: 2 }
    );
    assert_eq!(
        bounce(&s, "bob@example.net", T0 + 20 * DAY).await,
        Effect::Scored { score: 1 }
    );
}

#[tokio::test]
async fn bounce_messages_verp_and_smtp_failures_count() {
    let (_d, s) = stage().await;
    // A real RFC 3464 report for userx@example.com, delivered to jca-bounces@.
    let dsn = std::fs::read(corpus().join("bounces/flufl-dsn_01.eml")).unwrap();
    let intake = concord::inbound::intake::Intake::new(
        s.pool.clone(),
        concord::route::Router::new(&s.config),
        u64::MAX,
    );
    let a = intake
        .accept(concord::inbound::intake::Delivery {
            raw: dsn,
            source: "test".into(),
            envelope_from: None,
            recipients: vec!["jca-bounces@lists.example.org".into()],
        })
        .await
        .unwrap();
    assert!(a.quarantined.is_none());
    // The same kind of report through VERP for bob (the report itself names userx too).
    let other = std::fs::read(corpus().join("bounces/flufl-caiwireless_01.eml")).unwrap();
    intake
        .accept(concord::inbound::intake::Delivery {
            raw: other,
            source: "test".into(),
            envelope_from: None,
            recipients: vec!["jca-bounces+bob=example.net@lists.example.org".into()],
        })
        .await
        .unwrap();
    // A 5xx at delivery.
    let mut tx = s.pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    concord::outbound::enqueue(
        &mut tx,
        &concord::outbound::Outgoing {
            envelope_from: "jca-bounces@lists.example.org".into(),
            recipients: vec!["owner@example.org".into()],
            raw: b"Subject: x\r\n\r\nx\r\n".to_vec(),
            list: Some("jca".into()),
            origin_message: None,
        },
    )
    .await
    .unwrap();
    sqlx::query("UPDATE outbox_recipients SET state = 'failed', last_code = 550, failed_at = 1 WHERE recipient = 'owner@example.org'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    s.process_bounces(T0).await.unwrap();
    let score = |a: &'static str| {
        let pool = s.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT bounce_score FROM members WHERE address = ?")
                .bind(a)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        score("userx@example.com").await,
        1,
        "both reports name userx, on one day"
    );
    assert_eq!(score("bob@example.net").await, 1, "VERP");
    assert_eq!(score("owner@example.org").await, 1, "5xx at delivery");
    let states: Vec<String> = sqlx::query_scalar("SELECT state FROM deliveries ORDER BY id")
        .fetch_all(&s.pool)
        .await
        .unwrap();
    assert_eq!(states, vec!["done", "done"]);
    // Handled once.
    s.process_bounces(T0 + DAY).await.unwrap();
    assert_eq!(score("owner@example.org").await, 1);
}
