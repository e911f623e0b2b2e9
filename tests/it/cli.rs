//! The `concord` binary as a user runs it: help, JSON listings, exit codes.

use std::path::Path;
use std::process::Command;

use crate::common::{Cli, corpus};

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn every_command_has_help() {
    let cli = Cli::new("");
    for cmd in [
        vec![],
        vec!["serve"],
        vec!["status"],
        vec!["init"],
        vec!["import"],
        vec!["search"],
        vec!["threads"],
        vec!["thread"],
        vec!["show"],
        vec!["export"],
        vec!["members"],
        vec!["members", "add"],
        vec!["members", "list"],
        vec!["members", "import"],
        vec!["holds"],
        vec!["holds", "list"],
        vec!["holds", "approve"],
        vec!["bounces"],
        vec!["bounces", "parse"],
        vec!["orgs"],
        vec!["orgs", "list"],
        vec!["orgs", "show"],
        vec!["orgs", "resolve"],
        vec!["queue"],
        vec!["queue", "list"],
        vec!["members", "pending"],
        vec!["quarantine"],
        vec!["quarantine", "list"],
        vec!["quarantine", "show"],
        vec!["archive"],
        vec!["archive", "rebuild"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let out = cli.ok(&args);
        assert!(out.contains("Usage:"), "{cmd:?}: {out}");
    }
}

#[test]
fn import_list_search_show_export() {
    let cli = Cli::new("");
    let mbox = corpus().join("threads/notmuch-list-2009-default.mbox");
    let out = cli.ok(&["init"]);
    assert!(out.contains("database ready"), "{out}");
    assert!(
        cli.dir.path().join("db/concord.db").exists(),
        "created on first use"
    );

    let s = cli.json(&["import", "--list", "notmuch", "--json", p(&mbox)]);
    assert_eq!(s["read"], 53);
    assert_eq!(
        s["imported"].as_u64().unwrap() + s["duplicates"].as_u64().unwrap(),
        53
    );

    let threads = cli.json(&["threads", "--list", "notmuch", "--json"]);
    let threads = threads.as_array().unwrap();
    assert!(threads.len() > 10);
    let maildir = threads
        .iter()
        .find(|t| {
            t["subject"]
                .as_str()
                .unwrap_or("")
                .contains("Working with Maildir")
        })
        .expect("the Maildir thread is listed");
    let msgs = maildir["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 7);
    assert_eq!(
        msgs[0], "20091117190054.GU3165@dottiness.seas.harvard.edu",
        "oldest first"
    );
    assert!(msgs.iter().all(|m| !m.as_str().unwrap().contains('<')));
    assert!(
        cli.json(&["threads", "--list", "other", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The tree, by thread id and by a Message-ID in it.
    let id = maildir["thread_id"].as_i64().unwrap().to_string();
    let text = cli.ok(&["thread", &id]);
    assert!(text.contains("Working with Maildir storage"), "{text}");
    let by_mid = cli.json(&["thread", "<87fx8can9z.fsf@vertex.dottedmag>", "--json"]);
    assert_eq!(by_mid["thread_id"].as_i64().unwrap().to_string(), id);
    assert_eq!(by_mid["roots"][0]["message_id"], msgs[0]);

    let hits = cli.json(&[
        "search",
        "--json",
        "--limit",
        "5",
        "subject:maildir",
        "storage",
    ]);
    let hits = hits.as_array().unwrap();
    assert!(!hits.is_empty() && hits.len() <= 5);
    assert!(
        hits.iter()
            .all(|h| h["snippet"].is_string() && h["message_id"].is_string())
    );
    // A query starting with '-' after `--`.
    let o = cli.run(&["search", "--json", "--", "-zzzznotaword"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let raw = cli.ok_bytes(&[
        "show",
        "--raw",
        "20091117190054.GU3165@dottiness.seas.harvard.edu",
    ]);
    let plain = std::fs::read(&mbox).unwrap();
    assert!(plain.windows(raw.len()).any(|w| w == raw.as_slice()));
    let shown = cli.ok(&["show", "<87iqd9rn3l.fsf@vertex.dottedmag>"]);
    assert!(
        shown.contains("Subject: Re: [notmuch] Working with Maildir storage?"),
        "{shown}"
    );

    let out = cli.dir.path().join("thread.mbox");
    cli.ok(&["export", "--thread", &id, "--mbox", p(&out)]);
    let exported = std::fs::read(&out).unwrap();
    let n = exported
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"From "))
        .count();
    assert_eq!(n, 7);

    // Rebuild recomputes the same threads.
    let before = cli.json(&["threads", "--json"]);
    let r = cli.json(&["archive", "rebuild", "--json"]);
    assert_eq!(
        r["messages"].as_u64().unwrap(),
        s["imported"].as_u64().unwrap()
    );
    let after = cli.json(&["threads", "--json"]);
    let key = |v: &serde_json::Value| {
        let mut x: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["messages"].to_string())
            .collect();
        x.sort();
        x
    };
    assert_eq!(key(&before), key(&after));
}

#[test]
fn status_before_and_after_a_daemon_run() {
    let cli = Cli::new("");
    let s = cli.json(&["status", "--json"]);
    assert_eq!(s["running"], false);
    assert!(s["daemon"].is_null());
    let text = cli.ok(&["status"]);
    assert!(text.contains("never started"), "{text}");
}

#[test]
fn exit_codes_mean_something() {
    let cli = Cli::new("");
    assert_eq!(cli.run(&["show", "nope@nowhere"]).status.code(), Some(3));
    assert_eq!(cli.run(&["thread", "nope@nowhere"]).status.code(), Some(3));
    let bad = cli.run(&["search", "\"unbalanced"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid query"));
    assert_eq!(cli.run(&["frobnicate"]).status.code(), Some(2));
    let missing = cli.dir.path().join("missing.mbox");
    assert_eq!(cli.run(&["import", p(&missing)]).status.code(), Some(4));
    let bad_cfg = cli.dir.path().join("bad.toml");
    std::fs::write(&bad_cfg, "[database]\nnope = 1\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_concord"))
        .env("CONCORD_CONFIG", &bad_cfg)
        .arg("threads")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope"));
}

#[test]
fn quarantine_is_listed_with_reasons() {
    let cli = Cli::new("");
    let junk = cli.dir.path().join("junk.eml");
    std::fs::write(&junk, b"\x00\x01 binary\n").unwrap();
    let out = cli.ok(&["import", p(&junk)]);
    assert!(out.contains("1 quarantined"), "{out}");
    let q = cli.json(&["quarantine", "list", "--json"]);
    let q = q.as_array().unwrap();
    assert_eq!(q.len(), 1);
    assert!(
        q[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no header section")
    );
    assert!(q[0]["origin"].as_str().unwrap().ends_with("junk.eml"));
    let id = q[0]["id"].as_i64().unwrap().to_string();
    assert_eq!(
        cli.ok_bytes(&["quarantine", "show", "--raw", &id]),
        b"\x00\x01 binary\n"
    );
    let text = cli.ok(&["quarantine", "list"]);
    assert!(text.contains("no header section"));
}

#[test]
fn json_logs_on_request() {
    let cli = Cli::new("");
    let junk = cli.dir.path().join("junk.eml");
    std::fs::write(&junk, b"\x00 binary\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_concord"))
        .arg("--config")
        .arg(&cli.config)
        .args(["--log-format", "json", "import", p(&junk)])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success());
    let line = String::from_utf8_lossy(&o.stderr);
    let first = line.lines().next().expect("a warning was logged");
    let v: serde_json::Value = serde_json::from_str(first).unwrap();
    assert_eq!(v["level"], "WARN");
    assert!(
        v["fields"]["reason"]
            .as_str()
            .unwrap()
            .contains("no header section")
    );
}

#[test]
fn members_and_holds_from_the_command_line() {
    let cli = Cli::new("");
    let mut cfg = std::fs::read_to_string(&cli.config).unwrap();
    cfg.push_str(crate::daemon::LISTS);
    std::fs::write(&cli.config, cfg).unwrap();
    let out = cli.ok(&[
        "members",
        "add",
        "jca-sghn",
        "Richard Stuart <Convener@Example.org>",
        "--role",
        "convener",
    ]);
    assert!(
        out.contains("added convener@example.org (convener)"),
        "{out}"
    );
    assert_eq!(
        cli.run(&[
            "members",
            "add",
            "jca-sghn",
            "x@example.org",
            "--role",
            "king"
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(
        cli.run(&["members", "add", "nolist", "x@example.org"])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        cli.run(&["members", "add", "jca-sghn", "not-an-address"])
            .status
            .code(),
        Some(2)
    );
    let file = cli.dir.path().join("people.txt");
    std::fs::write(
        &file,
        "# JCA participants\nalice@example.org\nBob <bob@example.net>\nnonsense\n\n",
    )
    .unwrap();
    let o = cli.run(&["members", "import", "jca-sghn", p(&file)]);
    assert_eq!(o.status.code(), Some(4), "a bad line is reported");
    assert!(String::from_utf8_lossy(&o.stdout).contains("2 added"));
    let m = cli.json(&["members", "list", "jca-sghn", "--json"]);
    let m = m.as_array().unwrap();
    assert_eq!(m.len(), 3);
    let bob = m
        .iter()
        .find(|x| x["address"] == "bob@example.net")
        .unwrap();
    assert_eq!(bob["display_name"], "Bob");
    assert_eq!(bob["role"], "member");
    cli.ok(&[
        "members",
        "set",
        "jca-sghn",
        "bob@example.net",
        "--delivery",
        "nomail",
        "--own-copy",
        "true",
        "--moderated",
        "true",
    ]);
    let m = cli.json(&["members", "list", "jca-sghn", "--json"]);
    let bob = m
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["address"] == "bob@example.net")
        .unwrap()
        .clone();
    assert_eq!(bob["delivery"], "nomail");
    assert_eq!(bob["receive_own"], true);
    assert_eq!(bob["moderated"], true);
    let weekly = cli.run(&[
        "members",
        "set",
        "jca-sghn",
        "bob@example.net",
        "--delivery",
        "weekly",
    ]);
    assert_eq!(weekly.status.code(), Some(2));
    let stranger = cli.run(&[
        "members",
        "set",
        "jca-sghn",
        "zed@example.net",
        "--moderated",
        "true",
    ]);
    assert_eq!(stranger.status.code(), Some(3));
    cli.ok(&["members", "remove", "jca-sghn", "bob@example.net"]);
    assert_eq!(
        cli.run(&["members", "remove", "jca-sghn", "bob@example.net"])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        cli.json(&["holds", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(cli.run(&["holds", "approve", "99"]).status.code(), Some(3));
}
