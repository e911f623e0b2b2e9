//! Bounce classification on the corpus of real bounces (`bounces/`, labelled in
//! `bounces.tsv`): recognition figures per kind, and `concord bounces parse` as a user
//! runs it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use concord::list::bounce::{Kind, classify};

use crate::common::corpus;

/// One row of bounces.tsv.
struct Expected {
    file: String,
    kind: String,
    addresses: BTreeSet<String>,
    /// Placeholder addresses (`.invalid`) the labeller used where a report names nobody.
    placeholders: usize,
    /// RFC 3463 codes from the label (sisimai's own x.0.9xx reason codes left out).
    statuses: BTreeSet<String>,
}

fn normalise(a: &str) -> String {
    a.trim().trim_matches('"').replace('"', "").to_lowercase()
}

fn expected() -> Vec<Expected> {
    let tsv = std::fs::read_to_string(corpus().join("bounces/bounces.tsv")).unwrap();
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (file, kind, addrs) = (col("file"), col("kind"), col("bounced_addresses"));
    let status = col("status");
    let mut out = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let all: Vec<String> = f[addrs]
            .split([',', ' '])
            .filter(|a| !a.trim().is_empty())
            .map(normalise)
            .collect();
        let placeholders = all.iter().filter(|a| a.ends_with(".invalid")).count();
        out.push(Expected {
            file: f[file].to_string(),
            kind: f[kind].to_string(),
            addresses: all
                .into_iter()
                .filter(|a| !a.ends_with(".invalid"))
                .collect(),
            placeholders,
            statuses: f[status]
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty() && !s.contains(".0.9"))
                .map(str::to_string)
                .collect(),
        });
    }
    assert!(out.len() > 700, "bounces.tsv lists {} files", out.len());
    out
}

#[derive(Default)]
struct Tally {
    files: usize,
    expected: usize,
    found: usize,
    /// Reported addresses the label does not list.
    extra: usize,
    kinds: BTreeMap<&'static str, usize>,
    placeholders: usize,
    /// Found recipients whose label gives an RFC 3463 code, and those where ours is one
    /// of the label's.
    status_labelled: usize,
    status_same: usize,
}

#[test]
fn corpus_recognition() {
    let dir = corpus().join("bounces");
    let rows = expected();
    let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
    let mut misses: Vec<String> = Vec::new();
    let mut extras: Vec<String> = Vec::new();
    let mut not_a_bounce_with_recipients = Vec::new();
    let mut arf_false = Vec::new();
    let mut bytes = 0usize;
    let started = Instant::now();
    for row in &rows {
        let raw = std::fs::read(dir.join(&row.file)).unwrap();
        bytes += raw.len();
        let report = classify(&raw);
        let got: BTreeSet<String> = report
            .recipients
            .iter()
            .map(|r| normalise(&r.address))
            .collect();
        let counts = match row.kind.as_str() {
            "dsn-rfc3464" | "non-standard-bounce" => {
                matches!(report.kind, Kind::Bounce | Kind::Delay)
            }
            "non-standard-bounce+feedback" => {
                matches!(report.kind, Kind::Bounce | Kind::Feedback)
            }
            "arf-feedback-report" => report.kind == Kind::Feedback,
            _ => false,
        };
        let t = tally.entry(row.kind.clone()).or_default();
        t.files += 1;
        t.placeholders += row.placeholders;
        *t.kinds.entry(report.kind.as_str()).or_default() += 1;
        t.expected += row.addresses.len();
        let found: BTreeSet<&String> = if counts {
            row.addresses.intersection(&got).collect()
        } else {
            BTreeSet::new()
        };
        t.found += found.len();
        if !row.statuses.is_empty() {
            for r in &report.recipients {
                if found.contains(&normalise(&r.address)) {
                    t.status_labelled += 1;
                    if r.status.as_ref().is_some_and(|s| row.statuses.contains(s)) {
                        t.status_same += 1;
                    }
                }
            }
        }
        let extra: Vec<&String> = got.difference(&row.addresses).collect();
        t.extra += extra.len();
        if !extra.is_empty() {
            extras.push(format!(
                "  {} [{}] {} {:?}, label {:?}",
                row.file, row.kind, report.kind, extra, row.addresses
            ));
        }
        if found.len() < row.addresses.len() {
            misses.push(format!(
                "  {} [{}] expected {:?}, got {} {:?}",
                row.file, row.kind, row.addresses, report.kind, got
            ));
        }
        if row.kind == "not-a-bounce" && report.kind == Kind::Bounce && !got.is_empty() {
            not_a_bounce_with_recipients.push(row.file.clone());
        }
        // A label that is only a placeholder says the labeller found nobody, not that the
        // report names nobody (sisimai-arf-12 has a Removal-Recipient field).
        let placeholder_only = row.addresses.is_empty() && row.placeholders > 0;
        if row.kind == "arf-feedback-report" && !extra.is_empty() && !placeholder_only {
            arf_false.push(format!("{} {:?}", row.file, extra));
        }
    }
    let elapsed = started.elapsed();

    println!(
        "bounce corpus: {} files, {} KiB classified in {:.1} ms ({:.0} µs per message)",
        rows.len(),
        bytes / 1024,
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / rows.len() as f64
    );
    println!(
        "{:<30} {:>5} {:>16} {:>7} {:>6} {:>11}  classified as",
        "label", "files", "found/expected", "share", "extra", "same status"
    );
    for (kind, t) in &tally {
        let share = if t.expected == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", 100.0 * t.found as f64 / t.expected as f64)
        };
        let kinds: Vec<String> = t.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "{:<30} {:>5} {:>16} {:>7} {:>6} {:>11}  {}{}",
            kind,
            t.files,
            format!("{}/{}", t.found, t.expected),
            share,
            t.extra,
            format!("{}/{}", t.status_same, t.status_labelled),
            kinds.join(", "),
            if t.placeholders > 0 {
                format!(" ({} placeholder addresses not counted)", t.placeholders)
            } else {
                String::new()
            }
        );
    }
    println!("expected addresses not found ({} files):", misses.len());
    for m in &misses {
        println!("{m}");
    }
    println!(
        "addresses reported that the label does not list ({} files):",
        extras.len()
    );
    for m in &extras {
        println!("{m}");
    }

    let share = |kind: &str| {
        let t = &tally[kind];
        t.found as f64 / t.expected as f64
    };
    let classified = |kind: &str, as_kind: Kind| {
        let t = &tally[kind];
        *t.kinds.get(as_kind.as_str()).unwrap_or(&0) as f64 / t.files as f64
    };
    assert!(
        share("dsn-rfc3464") >= 0.95,
        "RFC 3464 reports: {:.3}",
        share("dsn-rfc3464")
    );
    assert!(
        share("non-standard-bounce") >= 0.95,
        "non-standard bounces: {:.3}",
        share("non-standard-bounce")
    );
    assert!(
        classified("auto-reply", Kind::AutoReply) >= 0.8,
        "auto-replies classified as such: {:.3}",
        classified("auto-reply", Kind::AutoReply)
    );
    assert_eq!(
        tally["auto-reply"].kinds.get("bounce"),
        None,
        "auto-replies taken for bounces"
    );
    assert!(
        not_a_bounce_with_recipients.is_empty(),
        "not bounces, but bounces with recipients: {not_a_bounce_with_recipients:?}"
    );
    assert!(
        arf_false.is_empty(),
        "ARF reports, false recipients: {arf_false:?}"
    );
    assert!(
        classified("arf-feedback-report", Kind::Feedback) == 1.0,
        "every ARF report is feedback"
    );
    assert!(
        classified("delivery-success-notification", Kind::Success) == 1.0,
        "every success notification is a success"
    );
}

fn concord(dir: &Path, args: &[&str]) -> std::process::Output {
    let config = dir.join("concord.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{}/db/concord.db\"\n[log]\nlevel = \"warn\"\n",
            dir.display()
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_concord"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn sample(name: &str) -> PathBuf {
    corpus().join("bounces").join(name)
}

#[test]
fn cli_parses_bounces_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = sample("flufl-postfix_01.eml");
    let auto = sample("sisimai-rfc3834-02.eml");
    let out = concord(
        dir.path(),
        &[
            "bounces",
            "parse",
            "--json",
            dsn.to_str().unwrap(),
            auto.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = v.as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["file"], dsn.to_str().unwrap());
    assert_eq!(files[0]["kind"], "bounce");
    let r = files[0]["recipients"].as_array().unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["address"], "xxxxx@local.ie");
    assert_eq!(r[0]["action"], "failed");
    assert_eq!(r[0]["status"], "5.1.1");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&files[0]), ["file", "kind", "recipients"]);
    assert_eq!(keys(&r[0]), ["action", "address", "status"]);
    assert_eq!(files[1]["kind"], "auto-reply");
    assert_eq!(files[1]["recipients"], serde_json::json!([]));
}

#[test]
fn cli_reports_unreadable_files_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such.eml");
    let dsn = sample("flufl-dsn_11.eml");
    let out = concord(
        dir.path(),
        &[
            "bounces",
            "parse",
            missing.to_str().unwrap(),
            dsn.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(4));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no-such.eml: unreadable"), "{text}");
    assert!(
        text.contains(&format!(
            "{}: bounce\n  joem@example.com  failed  5.1.1",
            dsn.display()
        )),
        "{text}"
    );
    let help = concord(dir.path(), &["bounces", "parse", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage:"));
    let out = concord(
        dir.path(),
        &["bounces", "parse", "--json", missing.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["kind"], serde_json::Value::Null);
    assert_eq!(v[0]["file"], missing.to_str().unwrap());
    assert!(v[0]["error"].is_string(), "{v}");
}
