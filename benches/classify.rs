//! Liaison classification throughput: every message of the shared corpus and of the
//! labelled liaison sets, classified in memory (no database, no I/O in the timed loop).
//!
//! `cargo bench --bench classify` (or `bench/classify.sh`) prints messages per second,
//! the per-message time, and how many messages were taken for statements.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use concord::archive::mbox::{Flavor, Item, Reader};
use concord::liaison::classify::classify;
use concord::liaison::registry::Registry;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn load(root: &Path, messages: &mut Vec<(String, Vec<u8>)>) {
    let mut paths = Vec::new();
    files(root, &mut paths);
    for p in paths {
        let name = p.display().to_string();
        match p.extension().and_then(|e| e.to_str()) {
            Some("eml") => {
                if let Ok(raw) = std::fs::read(&p) {
                    messages.push((name, raw));
                }
            }
            Some("mbox") => {
                let Ok(f) = std::fs::File::open(&p) else {
                    continue;
                };
                for (i, item) in Reader::new(BufReader::new(f), Flavor::Mboxrd).enumerate() {
                    if let Item::Message(raw) | Item::Truncated(raw, _) = item {
                        messages.push((format!("{name}#{i}"), raw));
                    }
                }
            }
            _ => {}
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = std::env::var_os("CONCORD_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/corpus"));
    let registry = Registry::from_file(&root.join("config/organizations.toml")).expect("registry");
    let mut messages = Vec::new();
    load(&corpus, &mut messages);
    let corpus_count = messages.len();
    load(&root.join("tests/fixtures/liaison"), &mut messages);
    load(&root.join("tests/fixtures/liaison-holdout"), &mut messages);
    let bytes: usize = messages.iter().map(|(_, m)| m.len()).sum();
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);

    // Warm-up (compiles the patterns) and the list of messages taken for statements.
    let mut statements = Vec::new();
    for (name, raw) in &messages {
        let c = classify(&registry, "jca-sghn", raw);
        if c.is_liaison {
            statements.push(name.clone());
        }
    }
    if std::env::var_os("PARSE_ONLY").is_some() {
        let t = Instant::now();
        let mut n = 0usize;
        for (_, raw) in &messages {
            n += mail_parser::MessageParser::new()
                .parse(raw)
                .map(|m| m.parts.len())
                .unwrap_or(0);
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "mail-parser alone: {:.0} messages/s ({n} parts)",
            messages.len() as f64 / s
        );
    }
    let mut times = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let mut n = 0usize;
        for (_, raw) in &messages {
            n += usize::from(classify(&registry, "jca-sghn", raw).is_liaison);
        }
        assert_eq!(n, statements.len());
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let median = times[times.len() / 2];
    println!(
        "messages: {} ({} from the corpus, {} labelled), {:.1} MB",
        messages.len(),
        corpus_count,
        messages.len() - corpus_count,
        bytes as f64 / 1e6
    );
    println!(
        "classification: median {:.3} s per pass over {rounds} passes = {:.0} messages/s, {:.1} µs/message, {:.1} MB/s",
        median,
        messages.len() as f64 / median,
        median * 1e6 / messages.len() as f64,
        bytes as f64 / 1e6 / median
    );
    // The labelled sets alone: every message there names a liaison, so none is settled by
    // the byte prefilter; this is the cost of full recognition.
    let labelled = &messages[corpus_count..];
    if !labelled.is_empty() {
        let t = Instant::now();
        let reps = 20;
        for _ in 0..reps {
            for (_, raw) in labelled {
                std::hint::black_box(classify(&registry, "jca-sghn", raw));
            }
        }
        let per = t.elapsed().as_secs_f64() / (reps * labelled.len()) as f64;
        println!(
            "full recognition (labelled sets only): {:.0} messages/s, {:.1} µs/message",
            1.0 / per,
            per * 1e6
        );
    }
    let corpus_hits: Vec<&String> = statements
        .iter()
        .filter(|n| !n.contains("/tests/fixtures/"))
        .collect();
    println!(
        "taken for statements: {} ({} in the corpus)",
        statements.len(),
        corpus_hits.len()
    );
    for n in corpus_hits {
        println!("  corpus statement?: {n}");
    }
}
