//! Golden fixtures for the parser wrapper: each `tests/fixtures/NAME.eml` (real mail
//! copied from the shared corpus, origins in `tests/fixtures/SOURCES.tsv`) has beside it
//! `NAME.json`, what `concord::parse::parse` must make of it. Run with
//! `CONCORD_BLESS=1` to rewrite the `.json` files after a deliberate change, and review
//! the diff.

use std::path::Path;

use serde::Serialize;

#[derive(Serialize)]
struct Golden {
    ok: Option<concord::parse::Parsed>,
    quarantine: Option<String>,
}

fn golden(raw: &[u8]) -> Golden {
    match concord::parse::parse(raw) {
        Ok(mut p) => {
            // Keep fixtures readable: the first 400 characters of the body text.
            if let Some((cut, _)) = p.body.char_indices().nth(400) {
                p.body.truncate(cut);
            }
            Golden {
                ok: Some(p),
                quarantine: None,
            }
        }
        Err(e) => Golden {
            ok: None,
            quarantine: Some(e.to_string()),
        },
    }
}

#[test]
fn parser_output_matches_golden_json() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let bless = std::env::var_os("CONCORD_BLESS").is_some();
    let mut n = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let eml = entry.unwrap().path();
        if eml.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        n += 1;
        let raw = std::fs::read(&eml).unwrap();
        let got = serde_json::to_string_pretty(&golden(&raw)).unwrap() + "\n";
        let json = eml.with_extension("json");
        if bless {
            std::fs::write(&json, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&json)
            .unwrap_or_else(|_| panic!("{} has no .json beside it", eml.display()));
        if got != want {
            failures.push(format!(
                "{}:\n--- want\n{want}\n--- got\n{got}",
                eml.display()
            ));
        }
    }
    assert!(n >= 10, "only {n} fixtures");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
