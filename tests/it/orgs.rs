//! The organization registry as shipped (config/organizations.toml) against the labelled
//! liaison statements of tests/fixtures/liaison, and the `concord orgs` commands.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use concord::liaison::registry::{REQUIRED_IDS, Registry};

use crate::common::Cli;

fn shipped_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/organizations.toml")
}

fn shipped() -> Registry {
    Registry::from_file(&shipped_path()).unwrap()
}

#[test]
fn every_required_id_exists() {
    let reg = shipped();
    for id in REQUIRED_IDS {
        assert!(reg.get(id).is_some(), "{id} missing");
    }
}

#[test]
fn names_of_the_fixture_readme_table_resolve() {
    let reg = shipped();
    let table: &[(&str, &str)] = &[
        ("JCA-SG&HN", "jca-sghn"),
        ("ITU-T JCA-SG&HN", "jca-sghn"),
        ("JCA-HN", "jca-sghn"),
        ("ITU-T Study Group 15", "itu-t-sg15"),
        ("SG13", "itu-t-sg13"),
        ("Q2/13", "itu-t-sg13"),
        ("Working Party 1/5", "itu-t-sg5"),
        ("TSAG", "itu-t-tsag"),
        ("JCA-IoT", "jca-iot"),
        ("ITU-R WP 1A", "itu-r"),
        ("WP 5A", "itu-r"),
        ("ITU-D Study Group 2", "itu-d"),
        ("Question 25/2", "itu-d"),
        ("IEC SMB SG3", "iec-smb-sg3"),
        ("IEC TC 13", "iec"),
        ("TC 57 WG 21", "iec"),
        ("CISPR", "iec"),
        ("CISPR/I", "iec"),
        ("ISO/TC 205", "iso"),
        ("ISO/TC 205/WG 3", "iso"),
        ("ISO/IEC JTC 1", "iso-iec-jtc1"),
        ("ISO/IEC JTC 1/SC 25", "iso-iec-jtc1"),
        ("IEEE 802.11", "ieee"),
        ("IEEE 802.24 TAG", "ieee"),
        ("IEEE P2030", "ieee"),
        ("IEEE-SA", "ieee"),
        ("IETF CoRE WG", "ietf"),
        ("IAB", "ietf"),
        ("ETSI TC PLT", "etsi"),
        ("TC M2M", "etsi"),
        ("ETSI TC ERM", "etsi"),
        ("3GPP TSG SA", "3gpp"),
        ("RAN2", "3gpp"),
        ("CEN", "cen-cenelec"),
        ("CENELEC", "cen-cenelec"),
        ("CLC/TC 205", "cen-cenelec"),
        ("CENELEC TC 205A", "cen-cenelec"),
        ("CEN-CENELEC-ETSI SG-CG", "cen-cenelec"),
        ("NIST SGIP", "nist-sgip"),
        ("SGIP H2G DEWG", "nist-sgip"),
        ("NIST SGIP PAP 15", "nist-sgip"),
        ("HomePlug Powerline Alliance", "homeplug"),
        ("Wi-SUN Alliance", "wi-sun"),
        (
            "Smart Energy Systems Research Group, University of Exampleshire",
            "academia",
        ),
    ];
    let mut wrong = Vec::new();
    for (text, id) in table {
        let got = reg.resolve(text).map(|r| r.org);
        if got.as_deref() != Some(*id) {
            wrong.push(format!("{text:?}: expected {id}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

struct Statement {
    file: String,
    source: String,
    from_subgroup: Option<String>,
    to: Vec<String>,
    body: String,
}

/// The labelled statements (is_liaison = true) with their decoded text parts.
fn statements() -> Vec<Statement> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/liaison");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for json in files {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        if v["is_liaison"] != true {
            continue;
        }
        let raw = std::fs::read(json.with_extension("eml")).unwrap();
        let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let mut body = String::new();
        let mut i = 0;
        while let Some(t) = msg.body_text(i) {
            body.push_str(&t);
            body.push('\n');
            i += 1;
        }
        out.push(Statement {
            file: json.file_stem().unwrap().to_string_lossy().into_owned(),
            source: v["source"].as_str().unwrap().to_string(),
            from_subgroup: v["from_subgroup"].as_str().map(String::from),
            to: v["to"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["org"].as_str().unwrap().to_string())
                .collect(),
            body,
        });
    }
    assert_eq!(out.len(), 62, "statements 001-062");
    out
}

/// The values of the body's `Label:` lines for the given labels, each with its indented
/// continuation lines.
fn field_lines(body: &str, labels: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut open = false;
    for l in body.lines() {
        let field = l.split_once(':').filter(|(label, _)| {
            let label = label.trim();
            !label.is_empty()
                && label.len() <= 30
                && label
                    .chars()
                    .all(|c| c.is_alphabetic() || " ()".contains(c))
        });
        match field {
            Some((label, value)) if labels.iter().any(|x| x.eq_ignore_ascii_case(label.trim())) => {
                out.push(value.trim().to_string());
                open = true;
            }
            _ if open && l.starts_with([' ', '\t']) && !l.trim().is_empty() && field.is_none() => {
                let last = out.last_mut().unwrap();
                last.push_str("; ");
                last.push_str(l.trim());
            }
            _ => open = false,
        }
    }
    out
}

#[test]
fn labelled_statements_resolve_to_their_source() {
    let reg = shipped();
    let mut wrong = Vec::new();
    let mut from_lines = 0;
    for s in statements() {
        // The sending unit as the labels spell it resolves to the source, unchanged.
        if let Some(sub) = &s.from_subgroup {
            let got = reg.resolve(sub).map(|r| (r.org, r.from_subgroup));
            if got != Some((s.source.clone(), Some(sub.clone()))) {
                wrong.push(format!("{}: from_subgroup {sub:?} gave {got:?}", s.file));
            }
        }
        // The first Source:/From: line of the statement that names an organization.
        let named = field_lines(&s.body, &["Source", "From"])
            .into_iter()
            .find_map(|v| reg.resolve(&v).map(|r| (v, r)));
        if let Some((line, r)) = named {
            from_lines += 1;
            if r.org != s.source {
                wrong.push(format!(
                    "{}: {line:?} gave {}, expected {}",
                    s.file, r.org, s.source
                ));
            }
        }
        // Every destination is named in the destination fields (when the statement has
        // them in its text).
        let dest = field_lines(
            &s.body,
            &[
                "For action to",
                "For comment to",
                "For information to",
                "To",
                "Cc",
                "Copy",
                "Purpose",
            ],
        );
        if !dest.is_empty() {
            let found: BTreeSet<String> = dest
                .iter()
                .flat_map(|l| reg.resolve_all(l))
                .map(|r| r.org)
                .collect();
            for t in &s.to {
                if !found.contains(t) {
                    wrong.push(format!("{}: destination {t} not found in {dest:?}", s.file));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        from_lines >= 40,
        "only {from_lines} statements had a Source/From line"
    );
}

#[test]
fn cli_list_and_show() {
    let cli = Cli::new("[liaison]\norganizations = \"{orgs}\"\n");
    let all = cli.json(&["orgs", "list", "--json"]);
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    for id in REQUIRED_IDS {
        assert!(ids.contains(id), "{id}");
    }
    let forums = cli.json(&["orgs", "list", "--kind", "forum", "--json"]);
    assert!(
        forums
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["kind"] == "forum")
    );
    assert!(forums.as_array().unwrap().len() >= 8);

    let o = cli.json(&["orgs", "show", "itu-t-sg15", "--json"]);
    assert_eq!(o["name"], "ITU-T Study Group 15");
    assert!(
        o["liaison_contacts"]
            .as_array()
            .unwrap()
            .contains(&"tsbsg15@itu.int".into())
    );
    // By name, with the sub-group it names.
    let o = cli.json(&["orgs", "show", "3GPP TSG SA WG2", "--json"]);
    assert_eq!(o["id"], "3gpp");
    assert_eq!(o["from_subgroup"], "SA2");
    let text = cli.ok(&["orgs", "show", "IEC SMB SG3"]);
    assert!(text.starts_with("iec-smb-sg3"), "{text}");

    let o = cli.run(&["orgs", "show", "no-such-body"]);
    assert_eq!(o.status.code(), Some(3));
    let o = cli.run(&["orgs", "resolve", "HomeGrid Forum"]);
    assert_eq!(o.status.code(), Some(3));
    let o = cli.run(&["orgs", "list", "--kind", "planet"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn cli_alias_add_resolve_remove() {
    let cli = Cli::new("[liaison]\norganizations = \"{orgs}\"\n");
    let r = cli.json(&["orgs", "resolve", "--json", "Question 15/15"]);
    assert_eq!(r["org"], "itu-t-sg15");
    assert_eq!(r["from_subgroup"], "Q15/15");

    let out = cli.ok(&["orgs", "alias", "add", "homeplug", "HPA Powerline"]);
    assert!(out.contains("added"), "{out}");
    let r = cli.json(&["orgs", "resolve", "--json", "from the hpa-powerline office"]);
    assert_eq!(r["org"], "homeplug");
    let o = cli.json(&["orgs", "show", "homeplug", "--json"]);
    assert_eq!(o["added_aliases"][0], "HPA Powerline");

    // Another organization's name is refused (usage error); an unknown id is not found.
    let o = cli.run(&["orgs", "alias", "add", "ieee", "SG 15"]);
    assert_eq!(o.status.code(), Some(2));
    let o = cli.run(&["orgs", "alias", "add", "nobody", "X"]);
    assert_eq!(o.status.code(), Some(3));

    cli.ok(&["orgs", "alias", "remove", "homeplug", "HPA Powerline"]);
    let o = cli.run(&["orgs", "resolve", "HPA Powerline"]);
    assert_eq!(o.status.code(), Some(3));
    let o = cli.run(&["orgs", "alias", "remove", "homeplug", "HPA Powerline"]);
    assert_eq!(o.status.code(), Some(3));
}
