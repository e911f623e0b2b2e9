//! What a list does to an accepted post before it goes out: the pipeline of small
//! handlers GNU Mailman 3 runs, on the raw bytes so everything not touched stays exactly
//! as the author wrote it.
//!
//! - headers a list must own are replaced: RFC 2919 `List-Id`; RFC 2369 `List-Post`,
//!   `List-Help`, `List-Subscribe`, `List-Unsubscribe`, `List-Owner`, `List-Archive`;
//!   RFC 8058 `List-Unsubscribe-Post` when a one-click endpoint exists; RFC 5064
//!   `Archived-At`; `Precedence: list`; `Sender` (the bounces address, RFC 5322 section
//!   3.6.2); `X-Loop`;
//! - the subject prefix is added once (`[jca] Re: x`, never `Re: [jca] Re: [jca] x`);
//! - `Reply-To` per list policy; DMARC mitigation (From rewritten, or the post wrapped);
//! - the footer is added in a MIME-correct way: appended to a lone text/plain part in its
//!   own charset and transfer encoding, added as a part to multipart/mixed, otherwise the
//!   message is wrapped in a new multipart/mixed (which keeps multipart/signed intact).
//!   DKIM signatures of a modified message are removed (they would fail anyway).

use mail_builder::headers::Header;
use mail_builder::headers::address::Address as BAddress;
use mail_builder::headers::text::Text;
use mail_parser::{MessageParser, MimeHeaders};

use crate::config::{DmarcMitigation, List, ReplyTo};

/// How the copy for the list is built.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    pub list: &'a List,
    /// The author's DMARC policy is quarantine or reject.
    pub dmarc_strict: bool,
    /// The archive id of the post, for `Archived-At`.
    pub message_id: &'a str,
}

/// One header field, with its raw bytes (name, colon, value, folding, line end).
struct Field {
    name: String,
    raw: Vec<u8>,
}

/// Splits a message into header fields and body. The body starts after the empty line.
fn split(raw: &[u8]) -> (Vec<Field>, &[u8], &'static str) {
    // The message's own line ending, judged by its first line.
    let first = raw.iter().position(|&b| b == b'\n');
    let eol = match first {
        Some(i) if i > 0 && raw[i - 1] == b'\r' => "\r\n",
        _ => "\n",
    };
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = 0;
    while pos < raw.len() {
        let end = raw[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| pos + i + 1);
        let line = &raw[pos..end];
        if line == b"\n" || line == b"\r\n" {
            return (fields, &raw[end..], eol);
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        match (continuation, fields.last_mut()) {
            (true, Some(f)) => f.raw.extend_from_slice(line),
            _ => {
                let name = line
                    .iter()
                    .position(|&b| b == b':')
                    .map(|c| {
                        String::from_utf8_lossy(&line[..c])
                            .trim()
                            .to_ascii_lowercase()
                    })
                    .unwrap_or_default();
                fields.push(Field {
                    name,
                    raw: line.to_vec(),
                });
            }
        }
        pos = end;
    }
    (fields, &raw[raw.len()..], eol)
}

/// Writes `Name: value` with mail-builder's encoding (RFC 2047 words, folding).
fn encoded(name: &str, h: &impl Header, eol: &str) -> Vec<u8> {
    let mut out = format!("{name}: ").into_bytes();
    h.write_header(&mut out, name.len() + 2);
    if eol == "\n" {
        out = String::from_utf8_lossy(&out)
            .replace("\r\n", "\n")
            .into_bytes();
    }
    out
}

fn plain(name: &str, value: &str, eol: &str) -> Vec<u8> {
    // Values concord writes never carry line breaks taken from input.
    let value: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    format!("{name}: {value}{eol}").into_bytes()
}

/// `[prefix] Re: base` — the prefix once, one reply marker at most.
pub fn prefixed_subject(subject: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        return subject.to_string();
    }
    let mut s = subject.trim();
    let mut reply = false;
    loop {
        let before = s.len();
        if s.len() >= prefix.len()
            && s.is_char_boundary(prefix.len())
            && s[..prefix.len()].eq_ignore_ascii_case(prefix)
        {
            s = s[prefix.len()..].trim_start();
        }
        if let Some((rest, is_reply)) = crate::parse::strip_marker(s)
            && is_reply
        {
            reply = true;
            s = rest.trim_start();
        }
        if s.len() == before {
            break;
        }
    }
    let s = if s.is_empty() { "(no subject)" } else { s };
    if reply {
        format!("{prefix} Re: {s}")
    } else {
        format!("{prefix} {s}")
    }
}

/// The footer text with the list's values filled in.
pub fn footer_text(list: &List) -> Option<String> {
    let f = list.footer.as_ref()?;
    Some(
        f.replace("{list}", &list.name)
            .replace("{address}", &list.address)
            .replace("{description}", &list.description)
            .replace("{archive_url}", list.archive_url.as_deref().unwrap_or(""))
            .replace("{request}", &list.sub_address("request")),
    )
}

fn qp_encode(bytes: &[u8], eol: &str) -> Vec<u8> {
    // RFC 2045 section 6.7, soft line breaks at 76 characters.
    let mut out = Vec::new();
    let mut col = 0;
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        for (j, &b) in line.iter().enumerate() {
            let last = j + 1 == line.len();
            let enc = if (b == b' ' || b == b'\t') && last
                || b == b'='
                || !(32..127).contains(&b) && b != b'\t'
            {
                format!("={b:02X}")
            } else {
                (b as char).to_string()
            };
            if col + enc.len() > 75 {
                out.extend_from_slice(b"=");
                out.extend_from_slice(eol.as_bytes());
                col = 0;
            }
            out.extend_from_slice(enc.as_bytes());
            col += enc.len();
        }
        if i + 1 < lines.len() {
            out.extend_from_slice(eol.as_bytes());
            col = 0;
        }
    }
    out
}

fn b64_lines(bytes: &[u8], eol: &str) -> Vec<u8> {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(eol.as_bytes());
    }
    out
}

fn to_eol(s: &str, eol: &str) -> String {
    s.replace("\r\n", "\n").replace('\n', eol)
}

/// A MIME part carrying the footer, in UTF-8.
fn footer_part(footer: &str, eol: &str) -> Vec<u8> {
    let body = to_eol(footer, eol);
    if footer.is_ascii() {
        format!(
            "Content-Type: text/plain; charset=\"us-ascii\"{eol}Content-Transfer-Encoding: 7bit{eol}Content-Disposition: inline{eol}{eol}{body}{eol}"
        )
        .into_bytes()
    } else {
        let mut out = format!(
            "Content-Type: text/plain; charset=\"utf-8\"{eol}Content-Transfer-Encoding: quoted-printable{eol}Content-Disposition: inline{eol}{eol}"
        )
        .into_bytes();
        out.extend(qp_encode(body.as_bytes(), eol));
        out.extend_from_slice(eol.as_bytes());
        out
    }
}

/// Adds the footer to a message (headers + body); returns the new header fields to use
/// instead of the Content-* ones when the message had to be wrapped.
fn add_footer(
    fields: &mut Vec<Field>,
    body: &[u8],
    raw: &[u8],
    footer: &str,
    eol: &str,
) -> Vec<u8> {
    let msg = MessageParser::default().parse_headers(raw);
    let ct = msg
        .as_ref()
        .and_then(|m| m.root_part().content_type().cloned());
    let (ctype, subtype) = match &ct {
        Some(c) => (
            c.ctype().to_ascii_lowercase(),
            c.subtype().unwrap_or("").to_ascii_lowercase(),
        ),
        None => ("text".into(), "plain".into()),
    };
    let charset = ct
        .as_ref()
        .and_then(|c| c.attribute("charset"))
        .unwrap_or("us-ascii")
        .to_ascii_lowercase();
    let cte = msg
        .as_ref()
        .and_then(|m| m.root_part().content_transfer_encoding())
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let sig = format!("{eol}{}{eol}", to_eol(footer, eol));

    if ctype == "text" && subtype == "plain" {
        // The footer in the part's own charset, if that charset is known and can carry
        // it; otherwise the message is wrapped and the footer gets a part of its own.
        let ascii_charset = charset == "us-ascii" || charset == "ascii";
        let encoding = if ascii_charset {
            Some(encoding_rs::WINDOWS_1252)
        } else {
            encoding_rs::Encoding::for_label(charset.as_bytes())
        };
        let (bytes, unmappable) = match encoding {
            Some(e) => {
                let (b, _, bad) = e.encode(&sig);
                (b.into_owned(), bad)
            }
            None => (Vec::new(), true),
        };
        let fits = !(unmappable || ascii_charset && !sig.is_ascii());
        if fits {
            let mut out = body.to_vec();
            match cte.as_str() {
                "base64" => {
                    use base64::Engine;
                    let cleaned: Vec<u8> = body
                        .iter()
                        .copied()
                        .filter(|b| !b.is_ascii_whitespace())
                        .collect();
                    if let Ok(mut decoded) =
                        base64::engine::general_purpose::STANDARD.decode(&cleaned)
                    {
                        decoded.extend_from_slice(&bytes);
                        return b64_lines(&decoded, eol);
                    }
                }
                "quoted-printable" => {
                    if !out.ends_with(b"\n") {
                        out.extend_from_slice(b"=");
                        out.extend_from_slice(eol.as_bytes());
                    }
                    out.extend(qp_encode(&bytes[eol.len()..], eol));
                    out.extend_from_slice(eol.as_bytes());
                    return out;
                }
                _ if !bytes.is_ascii() && cte == "7bit" => {}
                _ => {
                    if !out.ends_with(b"\n") {
                        out.extend_from_slice(eol.as_bytes());
                    }
                    out.extend_from_slice(&bytes[eol.len()..]);
                    return out;
                }
            }
        }
    }
    if ctype == "multipart"
        && subtype == "mixed"
        && let Some(boundary) = ct.as_ref().and_then(|c| c.attribute("boundary"))
    {
        let close = format!("--{boundary}--");
        let mut out;
        match find_line(body, close.as_bytes()) {
            Some(at) => {
                out = body[..at].to_vec();
                out.extend_from_slice(format!("--{boundary}{eol}").as_bytes());
                out.extend(footer_part(footer, eol));
                out.extend_from_slice(&body[at..]);
            }
            // No closing delimiter (a truncated message): the footer part closes it.
            None => {
                out = body.to_vec();
                if !out.ends_with(b"\n") {
                    out.extend_from_slice(eol.as_bytes());
                }
                out.extend_from_slice(format!("--{boundary}{eol}").as_bytes());
                out.extend(footer_part(footer, eol));
                out.extend_from_slice(format!("{close}{eol}").as_bytes());
            }
        }
        return out;
    }
    // Wrap: the original content becomes the first part of a new multipart/mixed.
    let boundary = format!(
        "=_concord_{}",
        &crate::parse::hex(&crate::parse::content_hash(raw))[..24]
    );
    let mut inner: Vec<u8> = Vec::new();
    let mut kept = Vec::new();
    for f in fields.drain(..) {
        if f.name.starts_with("content-") {
            inner.extend_from_slice(&f.raw);
        } else if f.name != "mime-version" {
            kept.push(f);
        }
    }
    if inner.is_empty() {
        inner.extend_from_slice(
            format!("Content-Type: text/plain; charset=\"{charset}\"{eol}").as_bytes(),
        );
    }
    *fields = kept;
    fields.push(Field {
        name: "mime-version".into(),
        raw: plain("MIME-Version", "1.0", eol),
    });
    fields.push(Field {
        name: "content-type".into(),
        raw: plain(
            "Content-Type",
            &format!("multipart/mixed; boundary=\"{boundary}\""),
            eol,
        ),
    });
    let mut out = format!("--{boundary}{eol}").into_bytes();
    out.extend(inner);
    out.extend_from_slice(eol.as_bytes());
    out.extend_from_slice(body);
    if !body.ends_with(b"\n") {
        out.extend_from_slice(eol.as_bytes());
    }
    out.extend_from_slice(format!("--{boundary}{eol}").as_bytes());
    out.extend(footer_part(footer, eol));
    out.extend_from_slice(format!("--{boundary}--{eol}").as_bytes());
    out
}

/// Start of the line that begins with `prefix`, searching from the end.
fn find_line(body: &[u8], prefix: &[u8]) -> Option<usize> {
    let mut starts: Vec<usize> = vec![0];
    starts.extend(
        body.iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1),
    );
    starts
        .into_iter()
        .rev()
        .find(|&s| body[s..].starts_with(prefix))
}

/// Headers a list replaces or removes on every copy.
const OWNED: &[&str] = &[
    "list-id",
    "list-post",
    "list-help",
    "list-subscribe",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-owner",
    "list-archive",
    "archived-at",
    "precedence",
    "sender",
    "errors-to",
    "return-path",
    "x-loop",
    "delivered-to",
    "x-original-to",
    // The moderators' secret never goes out.
    "approved",
    "approve",
];

/// Builds the copy the list sends for a post.
pub fn list_copy(raw: &[u8], o: &Options<'_>) -> Vec<u8> {
    list_copy_for(raw, o, None)
}

/// The copy for one member when the list's `unsubscribe_url` has a `{token}` (RFC 8058
/// section 3.1: the URI identifies the recipient): `token` is that member's one-click
/// token. Without a token such a URL is left out and only the `mailto:` remains.
pub fn list_copy_for(raw: &[u8], o: &Options<'_>, token: Option<&str>) -> Vec<u8> {
    let list = o.list;
    let (mut fields, body, eol) = split(raw);
    let parsed = MessageParser::default().parse(raw);
    let subject = parsed
        .as_ref()
        .and_then(|m| {
            m.subject()
                .map(|s| crate::parse::repair_raw_subject(m, raw, s.to_string()))
        })
        .unwrap_or_default();
    let author = parsed.as_ref().and_then(|m| {
        m.from()?.first().map(|a| {
            (
                a.name().map(str::to_string),
                a.address().map(str::to_string).unwrap_or_default(),
            )
        })
    });
    let footer = footer_text(list);
    let prefix = list.prefix();
    let new_subject = prefixed_subject(&subject, &prefix);
    let modified = footer.is_some() || new_subject != subject;

    fields
        .retain(|f| !(OWNED.contains(&f.name.as_str()) || modified && f.name == "dkim-signature"));
    if new_subject != subject {
        fields.retain(|f| f.name != "subject");
        fields.push(Field {
            name: "subject".into(),
            raw: encoded("Subject", &Text::new(new_subject.as_str()), eol),
        });
    }

    let wrap = o.dmarc_strict && list.dmarc_mitigation == DmarcMitigation::Wrap;
    let munge = o.dmarc_strict && list.dmarc_mitigation == DmarcMitigation::MungeFrom;
    if munge && let Some((name, addr)) = &author {
        let shown = format!(
            "{} via {}",
            name.clone().unwrap_or_else(|| addr.clone()),
            list.name
        );
        fields.retain(|f| f.name != "from" && f.name != "reply-to");
        fields.push(Field {
            name: "from".into(),
            raw: encoded(
                "From",
                &BAddress::new_address(Some(shown.as_str()), list.address.as_str()),
                eol,
            ),
        });
        // Replies reach the author (and the list when the list wants replies).
        let mut to = vec![BAddress::new_address(name.as_deref(), addr.as_str())];
        if list.reply_to == ReplyTo::List {
            to.push(BAddress::new_address(None::<&str>, list.address.as_str()));
        }
        fields.push(Field {
            name: "reply-to".into(),
            raw: encoded("Reply-To", &BAddress::new_list(to), eol),
        });
    } else if list.reply_to == ReplyTo::List {
        fields.retain(|f| f.name != "reply-to");
        fields.push(Field {
            name: "reply-to".into(),
            raw: encoded(
                "Reply-To",
                &BAddress::new_address(Some(list.name.as_str()), list.address.as_str()),
                eol,
            ),
        });
    }

    let mut body = body.to_vec();
    if let Some(f) = &footer
        && !wrap
    {
        body = add_footer(&mut fields, &body, raw, f, eol);
    }

    let request = list.sub_address("request");
    let mut list_headers = vec![
        encoded(
            "List-Id",
            &mail_builder::headers::raw::Raw::new(format!(
                "{} <{}>",
                if list.description.is_empty() {
                    list.name.clone()
                } else {
                    format!("\"{}\"", list.description.replace('"', ""))
                },
                super::rules::list_id(list)
            )),
            eol,
        ),
        plain("List-Post", &format!("<mailto:{}>", list.address), eol),
        plain(
            "List-Help",
            &format!("<mailto:{request}?subject=help>"),
            eol,
        ),
        plain(
            "List-Subscribe",
            &format!("<mailto:{}>", list.sub_address("join")),
            eol,
        ),
    ];
    let unsubscribe_url = match (&list.unsubscribe_url, token) {
        (Some(u), Some(t)) if u.contains("{token}") => Some(u.replace("{token}", t)),
        (Some(u), None) if u.contains("{token}") => None,
        (u, _) => u.clone(),
    };
    match &unsubscribe_url {
        Some(url) => {
            list_headers.push(plain(
                "List-Unsubscribe",
                &format!("<{url}>, <mailto:{}>", list.sub_address("leave")),
                eol,
            ));
            list_headers.push(plain(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click",
                eol,
            ));
        }
        None => list_headers.push(plain(
            "List-Unsubscribe",
            &format!("<mailto:{}>", list.sub_address("leave")),
            eol,
        )),
    }
    list_headers.push(plain(
        "List-Owner",
        &format!("<mailto:{}>", list.sub_address("owner")),
        eol,
    ));
    if let Some(url) = &list.archive_url {
        let base = url.trim_end_matches('/');
        list_headers.push(plain("List-Archive", &format!("<{base}/>"), eol));
        list_headers.push(plain(
            "Archived-At",
            &format!("<{}>", archived_at(base, o.message_id)),
            eol,
        ));
    }
    list_headers.push(plain("Precedence", "list", eol));
    list_headers.push(plain("Sender", &list.sub_address("bounces"), eol));
    list_headers.push(plain("X-Loop", &list.address, eol));

    let mut out = Vec::with_capacity(raw.len() + 1024);
    if wrap {
        return wrapped(
            raw,
            list,
            &new_subject,
            &list_headers,
            author.as_ref(),
            eol,
            footer.as_deref(),
        );
    }
    for f in &fields {
        out.extend_from_slice(&f.raw);
        if !f.raw.ends_with(b"\n") {
            out.extend_from_slice(eol.as_bytes());
        }
    }
    for h in list_headers {
        out.extend(h);
    }
    out.extend_from_slice(eol.as_bytes());
    out.extend(body);
    out
}

/// The web address of a message in a list's archive (the `Archived-At` URL, RFC 5064):
/// `ARCHIVE_URL/message/MESSAGE-ID`, the Message-ID without its angle brackets and
/// percent-encoded (RFC 3986 section 2.1) except for characters safe in a path.
pub fn archived_at(archive_url: &str, message_id: &str) -> String {
    format!(
        "{}/message/{}",
        archive_url.trim_end_matches('/'),
        url_escape(message_id)
    )
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'@'
            | b'+'
            | b'='
            | b'$'
            | b'!' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// DMARC mitigation by wrapping: a new message from the list whose only content is the
/// post as a message/rfc822 attachment (the author's signature stays valid inside).
fn wrapped(
    raw: &[u8],
    list: &List,
    subject: &str,
    list_headers: &[Vec<u8>],
    author: Option<&(Option<String>, String)>,
    eol: &str,
    footer: Option<&str>,
) -> Vec<u8> {
    let boundary = format!(
        "=_concord_{}",
        &crate::parse::hex(&crate::parse::content_hash(raw))[..24]
    );
    let parsed = MessageParser::default().parse_headers(raw);
    let keep = [
        "to",
        "cc",
        "date",
        "message-id",
        "in-reply-to",
        "references",
    ];
    let (fields, _, _) = split(raw);
    let mut out = Vec::new();
    for f in fields.iter().filter(|f| keep.contains(&f.name.as_str())) {
        out.extend_from_slice(&f.raw);
    }
    let _ = parsed;
    out.extend(encoded(
        "From",
        &BAddress::new_address(
            Some(
                format!(
                    "{} via {}",
                    author
                        .and_then(|a| a.0.clone())
                        .unwrap_or_else(|| author.map(|a| a.1.clone()).unwrap_or_default()),
                    list.name
                )
                .as_str(),
            ),
            list.address.as_str(),
        ),
        eol,
    ));
    if let Some((name, addr)) = author {
        out.extend(encoded(
            "Reply-To",
            &BAddress::new_address(name.as_deref(), addr.as_str()),
            eol,
        ));
    }
    out.extend(encoded("Subject", &Text::new(subject), eol));
    for h in list_headers {
        out.extend_from_slice(h);
    }
    out.extend(plain("MIME-Version", "1.0", eol));
    out.extend(plain(
        "Content-Type",
        &format!("multipart/mixed; boundary=\"{boundary}\""),
        eol,
    ));
    out.extend_from_slice(eol.as_bytes());
    let note = format!(
        "The message below was posted to {} by {}; its author's domain publishes a strict DMARC policy, so it is forwarded unchanged as an attachment.",
        list.address,
        author.map(|a| a.1.as_str()).unwrap_or("an unknown sender")
    );
    out.extend_from_slice(format!("--{boundary}{eol}").as_bytes());
    out.extend(footer_part(&note, eol));
    out.extend_from_slice(format!("--{boundary}{eol}Content-Type: message/rfc822{eol}Content-Disposition: inline{eol}{eol}").as_bytes());
    out.extend_from_slice(raw);
    if !raw.ends_with(b"\n") {
        out.extend_from_slice(eol.as_bytes());
    }
    if let Some(f) = footer {
        out.extend_from_slice(format!("--{boundary}{eol}").as_bytes());
        out.extend(footer_part(f, eol));
    }
    out.extend_from_slice(format!("--{boundary}--{eol}").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_once() {
        assert_eq!(prefixed_subject("Agenda", "[jca]"), "[jca] Agenda");
        assert_eq!(
            prefixed_subject("Re: [jca] Re: [jca] Agenda", "[jca]"),
            "[jca] Re: Agenda"
        );
        assert_eq!(
            prefixed_subject("[JCA] AW: Agenda", "[jca]"),
            "[jca] Re: Agenda"
        );
        assert_eq!(
            prefixed_subject("Fwd: Agenda", "[jca]"),
            "[jca] Fwd: Agenda"
        );
        assert_eq!(prefixed_subject("", "[jca]"), "[jca] (no subject)");
        assert_eq!(prefixed_subject("x", ""), "x");
    }

    #[test]
    fn qp_soft_breaks_and_escapes() {
        let e = String::from_utf8(qp_encode("é = x ".as_bytes(), "\n")).unwrap();
        assert_eq!(e, "=C3=A9 =3D x=20");
        let long = "a".repeat(200);
        let e = String::from_utf8(qp_encode(long.as_bytes(), "\n")).unwrap();
        assert!(e.lines().all(|l| l.len() <= 76), "{e}");
    }
}
