//! The list pipeline on real mail: every message of the MIME corpus gets the list's headers,
//! the prefix once, and the footer in a MIME-correct way, with its own content intact.

use mail_parser::{MessageParser, MimeHeaders};

use concord::config::{Config, List};
use concord::list::pipeline::{Options, list_copy};

use crate::common::corpus;

fn list(extra: &str) -> List {
    let text = format!(
        "[[list]]\nname = \"jca\"\naddress = \"jca@lists.example.org\"\ndescription = \"JCA-SG&HN\"\narchive_url = \"https://lists.example.org/archive/jca\"\nunsubscribe_url = \"https://lists.example.org/u/jca\"\n{extra}"
    );
    Config::from_toml(&text, std::path::Path::new("t"))
        .unwrap()
        .lists
        .remove(0)
}

const FOOTER: &str = "footer = \"-- \\nJCA-SG&HN list — {address}\\nUnsubscribe: {request}\"";

fn texts(raw: &[u8]) -> Vec<String> {
    let m = MessageParser::default().parse(raw).unwrap();
    let mut out: Vec<String> = (0..m.text_body_count())
        .filter_map(|i| m.body_text(i).map(|t| t.into_owned()))
        .collect();
    for p in m.attachments() {
        if let Some(t) = p.text_contents() {
            out.push(t.to_string());
        }
    }
    out
}

fn norm(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn footer_and_headers_on_the_mime_corpus() {
    let l = list(FOOTER);
    let mut checked = 0;
    let mut wrapped = 0;
    for e in std::fs::read_dir(corpus().join("mime")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "eml") {
            continue;
        }
        let raw = std::fs::read(&path).unwrap();
        if raw.starts_with(b"From ") || concord::parse::parse(&raw).is_err() {
            continue;
        }
        let Some(orig) = MessageParser::default().parse(&raw) else {
            continue;
        };
        let copy = list_copy(
            &raw,
            &Options {
                list: &l,
                dmarc_strict: false,
                message_id: "m@x",
            },
        );
        let name = path.display();
        let parsed = MessageParser::default()
            .parse(&copy)
            .unwrap_or_else(|| panic!("{name}: copy does not parse"));
        // Headers.
        let header = |n: &str| {
            parsed
                .headers_raw()
                .filter(|(k, _)| k.eq_ignore_ascii_case(n))
                .count()
        };
        for h in [
            "List-Id",
            "List-Post",
            "List-Help",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            "List-Owner",
            "List-Archive",
            "Archived-At",
            "Precedence",
            "Sender",
        ] {
            assert_eq!(header(h), 1, "{name}: {h}");
        }
        let subject = parsed.subject().unwrap_or("");
        assert!(subject.starts_with("[jca] "), "{name}: {subject}");
        assert_eq!(subject.matches("[jca]").count(), 1, "{name}: {subject}");
        // The footer is there, as text a reader sees.
        let copy_texts = texts(&copy);
        assert!(
            copy_texts
                .iter()
                // (After an empty message/rfc822 part, as in notmuch's broken-empty-part,
                // the parser nests the footer part inside it, still encoded.)
                .any(|t| (t.contains("JCA-SG&HN list — jca@lists.example.org")
                    || t.contains("JCA-SG&HN list =E2=80=94 jca@lists.example.org"))
                    && t.contains("jca-request@lists.example.org")),
            "{name}: no footer in {copy_texts:#?}"
        );
        // The author's text is intact. (Not judged where the parser itself reads a
        // delimiter line as text: an empty message/rfc822 part, as in notmuch's
        // broken-empty-part, makes it swallow what follows.)
        let joined = norm(&copy_texts.join("\n"));
        for t in texts(&raw) {
            let t = norm(&t);
            if !t.is_empty() && !t.starts_with("--=_") {
                assert!(
                    joined.contains(&t),
                    "{name}: lost text {:?}",
                    &t[..t.len().min(80)]
                );
            }
        }
        // Attachments keep their names.
        let names = |m: &mail_parser::Message| -> Vec<String> {
            m.attachments()
                .filter_map(|a| a.attachment_name().map(str::to_string))
                .collect()
        };
        for n in names(&orig) {
            assert!(names(&parsed).contains(&n), "{name}: lost attachment {n}");
        }
        let ct = parsed
            .root_part()
            .content_type()
            .map(|c| (c.ctype().to_string(), c.subtype().unwrap_or("").to_string()));
        let orig_ct = orig
            .root_part()
            .content_type()
            .map(|c| (c.ctype().to_string(), c.subtype().unwrap_or("").to_string()));
        if ct != orig_ct {
            assert_eq!(ct, Some(("multipart".into(), "mixed".into())), "{name}");
            wrapped += 1;
        }
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
    assert!(wrapped > 5, "{wrapped}");
}

#[test]
fn signed_messages_are_wrapped_with_the_signed_part_untouched() {
    let raw = b"From: a@example.org\r\nTo: jca@lists.example.org\r\nSubject: signed\r\nMessage-ID: <s@x>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; boundary=\"sig\"\r\n\r\n--sig\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n--sig\r\nContent-Type: application/pgp-signature\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\nxyz\r\n-----END PGP SIGNATURE-----\r\n--sig--\r\n";
    let l = list(FOOTER);
    let copy = list_copy(
        raw,
        &Options {
            list: &l,
            dmarc_strict: false,
            message_id: "s@x",
        },
    );
    let body_start = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let signed_body = &raw[body_start..];
    assert!(
        copy.windows(signed_body.len()).any(|w| w == signed_body),
        "the signed body is byte-identical inside"
    );
    let p = MessageParser::default().parse(&copy).unwrap();
    assert_eq!(
        p.root_part().content_type().unwrap().subtype(),
        Some("mixed")
    );
}

#[test]
fn plain_parts_get_the_footer_in_their_own_encoding() {
    let l = list("footer = \"Liste JCA — désinscription: {request}\"");
    // Latin-1 quoted-printable: the footer is appended in Latin-1, QP-encoded.
    let raw = b"From: a@example.org\nSubject: Re: [jca] Re: [jca] r\xe9union\nMessage-ID: <q@x>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nR=E9union demain.\n";
    let copy = list_copy(
        raw,
        &Options {
            list: &l,
            dmarc_strict: false,
            message_id: "q@x",
        },
    );
    let p = MessageParser::default().parse(&copy).unwrap();
    assert_eq!(p.subject(), Some("[jca] Re: réunion"));
    assert_eq!(
        p.root_part().content_type().unwrap().subtype(),
        Some("plain"),
        "appended, not wrapped"
    );
    let t = p.body_text(0).unwrap();
    assert!(t.contains("Réunion demain."), "{t}");
    assert!(t.contains("désinscription"), "{t}");
    assert!(
        !copy.windows(2).any(|w| w == b"\r\n"),
        "LF message stays LF"
    );
    // base64 UTF-8 text: decoded, footer added, re-encoded.
    let raw = b"From: a@example.org\r\nSubject: b64\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nSMOpbGxvIHfDtnJsZA==\r\n";
    let copy = list_copy(
        raw,
        &Options {
            list: &l,
            dmarc_strict: false,
            message_id: "b@x",
        },
    );
    let p = MessageParser::default().parse(&copy).unwrap();
    let t = p.body_text(0).unwrap();
    assert!(
        t.starts_with("Héllo wörld") && t.contains("désinscription"),
        "{t}"
    );
}

#[test]
fn dmarc_mitigation_munges_from_or_wraps() {
    let raw = b"From: Alice Author <alice@strict.example>\r\nTo: jca@lists.example.org\r\nSubject: policy\r\nMessage-ID: <d@x>\r\nDKIM-Signature: v=1; a=rsa-sha256; d=strict.example; s=s; b=abc\r\n\r\nbody\r\n";
    let l = list("reply_to = \"list\"");
    let copy = list_copy(
        raw,
        &Options {
            list: &l,
            dmarc_strict: true,
            message_id: "d@x",
        },
    );
    let p = MessageParser::default().parse(&copy).unwrap();
    let from = p.from().unwrap().first().unwrap();
    assert_eq!(from.address(), Some("jca@lists.example.org"));
    assert_eq!(from.name(), Some("Alice Author via jca"));
    let reply: Vec<&str> = p
        .reply_to()
        .unwrap()
        .iter()
        .filter_map(|a| a.address())
        .collect();
    assert_eq!(reply, vec!["alice@strict.example", "jca@lists.example.org"]);
    assert!(
        !String::from_utf8_lossy(&copy).contains("DKIM-Signature"),
        "a modified message drops the broken signature"
    );
    // Not strict: From untouched.
    let copy = list_copy(
        raw,
        &Options {
            list: &l,
            dmarc_strict: false,
            message_id: "d@x",
        },
    );
    let p = MessageParser::default().parse(&copy).unwrap();
    assert_eq!(
        p.from().unwrap().first().unwrap().address(),
        Some("alice@strict.example")
    );
    // Wrap: the original travels byte-identical as message/rfc822.
    let l = list("dmarc_mitigation = \"wrap\"");
    let copy = list_copy(
        raw,
        &Options {
            list: &l,
            dmarc_strict: true,
            message_id: "d@x",
        },
    );
    assert!(copy.windows(raw.len()).any(|w| w == raw.as_slice()));
    let p = MessageParser::default().parse(&copy).unwrap();
    assert_eq!(
        p.from().unwrap().first().unwrap().address(),
        Some("jca@lists.example.org")
    );
    assert!(p.attachments().any(|a| a.message().is_some()));
}
