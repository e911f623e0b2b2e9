//! The mbox format: a streaming reader for mboxrd and mboxo files, and the mboxrd writer.
//!
//! Format as described in RFC 4155 and by the mboxrd convention: each message is preceded
//! by a `From ` separator line and followed by one blank line; in mboxrd every body line
//! matching `^>*From ` is written with one extra `>`, and reading removes it. In mboxo only
//! `^From ` lines were quoted, so a reader must only unquote `^>From `. Reading streams line
//! by line, so a multi-gigabyte archive never has to fit in memory. Line endings (LF or
//! CRLF) are kept exactly as found.

use std::io::{self, BufRead, Write};

/// Which quoting convention the file follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
pub enum Flavor {
    /// `^>*From ` lines carry one extra `>` (lossless; the default).
    #[default]
    Mboxrd,
    /// Only `^From ` lines were quoted as `>From `.
    Mboxo,
}

/// One item read from an mbox.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// A message's bytes, unquoted.
    Message(Vec<u8>),
    /// Non-blank bytes found before the first separator line.
    Preamble(Vec<u8>),
    /// The file ended in a read error (a truncated gzip stream, an I/O error) while this
    /// message was being read; the bytes read so far and the error.
    Truncated(Vec<u8>, String),
}

/// Streaming mbox reader.
pub struct Reader<R> {
    inner: R,
    flavor: Flavor,
    cur: Vec<u8>,
    line: Vec<u8>,
    started: bool,
    prev_blank: bool,
    at_start: bool,
    done: bool,
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

/// A separator: `From ` followed by a non-blank sender token.
fn is_separator(line: &[u8]) -> bool {
    line.starts_with(b"From ") && line.get(5).is_some_and(|b| !b.is_ascii_whitespace())
}

/// Does this line need (mboxrd) quoting: `^>*From `?
fn is_from_line(line: &[u8]) -> bool {
    let n = line.iter().take_while(|&&b| b == b'>').count();
    line[n..].starts_with(b"From ")
}

/// Removes the blank line the writer put after a message.
fn strip_trailing_blank(buf: &mut Vec<u8>) {
    let before_last = |b: &[u8], n: usize| b.len() > n && b[b.len() - n - 1] == b'\n';
    if buf.ends_with(b"\r\n") && before_last(buf, 2) {
        buf.truncate(buf.len() - 2);
    } else if buf.ends_with(b"\n") && before_last(buf, 1) {
        buf.truncate(buf.len() - 1);
    }
}

impl<R: BufRead> Reader<R> {
    pub fn new(inner: R, flavor: Flavor) -> Self {
        Self {
            inner,
            flavor,
            cur: Vec::new(),
            line: Vec::new(),
            started: false,
            prev_blank: false,
            at_start: true,
            done: false,
        }
    }

    fn take(&mut self) -> Option<Item> {
        let mut buf = std::mem::take(&mut self.cur);
        if self.started {
            strip_trailing_blank(&mut buf);
            Some(Item::Message(buf))
        } else if buf.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(Item::Preamble(buf))
        }
    }

    fn unquote_into(&mut self) {
        let quoted = match self.flavor {
            Flavor::Mboxrd => self.line.first() == Some(&b'>') && is_from_line(&self.line),
            Flavor::Mboxo => self.line.starts_with(b">From "),
        };
        let start = usize::from(quoted);
        self.cur.extend_from_slice(&self.line[start..]);
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        while !self.done {
            self.line.clear();
            match self.inner.read_until(b'\n', &mut self.line) {
                Ok(0) => {
                    self.done = true;
                    return self.take();
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    self.cur.extend_from_slice(&self.line);
                    let buf = std::mem::take(&mut self.cur);
                    return Some(Item::Truncated(buf, e.to_string()));
                }
            }
            let sep =
                is_separator(&self.line) && (self.at_start || self.prev_blank || !self.started);
            self.at_start = false;
            self.prev_blank = is_blank(&self.line);
            if sep {
                let item = self.take();
                self.started = true;
                if item.is_some() {
                    return item;
                }
            } else {
                self.unquote_into();
            }
        }
        None
    }
}

/// Does this data look like an mbox (first non-blank line a separator)?
pub fn looks_like_mbox(head: &[u8]) -> bool {
    let start = head
        .iter()
        .position(|&b| b != b'\n' && b != b'\r')
        .unwrap_or(head.len());
    is_separator(&head[start..])
}

/// `asctime`-style date for the separator line, e.g. `Thu Jan  1 00:00:00 1970`.
fn asctime(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .unwrap_or_default()
        .format("%a %b %e %H:%M:%S %Y")
        .to_string()
}

/// Writes one message in mboxrd form: separator, quoted lines, trailing blank line.
/// A message that does not end in a line break gets one, since mbox cannot represent a
/// last line without it.
pub fn write_message<W: Write>(
    w: &mut W,
    envelope_from: &str,
    date: i64,
    raw: &[u8],
) -> io::Result<()> {
    let sender: String = envelope_from
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let sender = if sender.is_empty() {
        "MAILER-DAEMON".to_string()
    } else {
        sender
    };
    writeln!(w, "From {sender} {}", asctime(date))?;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if is_from_line(line) {
            w.write_all(b">")?;
        }
        w.write_all(line)?;
    }
    let crlf = raw.ends_with(b"\r\n");
    if !raw.ends_with(b"\n") {
        w.write_all(b"\n")?;
    }
    w.write_all(if crlf { b"\r\n" } else { b"\n" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(data: &[u8], flavor: Flavor) -> Vec<Item> {
        Reader::new(data, flavor).collect()
    }

    fn msgs(data: &[u8]) -> Vec<Vec<u8>> {
        read(data, Flavor::Mboxrd)
            .into_iter()
            .map(|i| match i {
                Item::Message(m) => m,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn round_trip_with_quoting() {
        let a = b"Subject: a\n\nFrom here\n>From there\n>>From afar\nend\n".to_vec();
        let b = b"Subject: b\r\n\r\nline\r\n\r\n".to_vec();
        let mut out = Vec::new();
        write_message(&mut out, "x@y", 0, &a).unwrap();
        write_message(&mut out, "", 86400, &b).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("\n>From here\n>>From there\n>>>From afar\n"),
            "{text}"
        );
        assert!(text.starts_with("From x@y Thu Jan  1 00:00:00 1970\n"));
        assert!(text.contains("From MAILER-DAEMON Fri Jan  2 00:00:00 1970\n"));
        assert_eq!(msgs(&out), vec![a, b]);
    }

    #[test]
    fn mboxo_unquotes_only_one_level() {
        let data = b"From a Mon Jan  1 00:00:00 2001\nS: x\n\n>From one\n>>From two\n\n";
        match &read(data, Flavor::Mboxo)[..] {
            [Item::Message(m)] => assert_eq!(m, b"S: x\n\nFrom one\n>>From two\n"),
            other => panic!("{other:?}"),
        }
        match &read(data, Flavor::Mboxrd)[..] {
            [Item::Message(m)] => assert_eq!(m, b"S: x\n\nFrom one\n>From two\n"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn from_line_without_blank_before_is_body() {
        let data = b"From a x\nS: 1\n\nbody\nFrom b is not a separator\n\nFrom c y\nS: 2\n\n";
        let m = msgs(data);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0], b"S: 1\n\nbody\nFrom b is not a separator\n");
    }

    #[test]
    fn preamble_and_truncation_are_reported() {
        let data = b"garbage before\nFrom a x\nS: 1\n\n";
        let items = read(data, Flavor::Mboxrd);
        assert_eq!(items[0], Item::Preamble(b"garbage before\n".to_vec()));
        assert_eq!(items[1], Item::Message(b"S: 1\n".to_vec()));

        struct Failing<'a>(&'a [u8]);
        impl io::Read for Failing<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "cut"));
                }
                let n = self.0.len().min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let r = io::BufReader::new(Failing(b"From a x\nS: 1\n\nFrom b x\nS: 2\npart"));
        let items: Vec<Item> = Reader::new(r, Flavor::Mboxrd).collect();
        assert_eq!(items[0], Item::Message(b"S: 1\n".to_vec()));
        match &items[1] {
            Item::Truncated(b, e) => {
                assert_eq!(b, b"S: 2\npart");
                assert!(e.contains("cut"));
            }
            other => panic!("{other:?}"),
        }
    }
}
