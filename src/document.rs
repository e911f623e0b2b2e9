//! A small writer of documents in Markdown or HTML (the progress report, a meeting's
//! report): headings, paragraphs, tables, numbered lists and links, with every value
//! escaped for the format, so a report built from mail can never inject markup.
//!
//! Markdown cells are kept on one line with `|` and markup characters escaped (as
//! CommonMark reads them); HTML text and attribute values are escaped per the HTML
//! Standard's "escaping a string" rules.

/// A document's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Markdown,
    Html,
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Makes text safe for one Markdown table cell or heading: one line, `|` and the
/// characters Markdown reads as markup escaped.
pub fn escape_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.split_whitespace().collect::<Vec<_>>().join(" ").chars() {
        match c {
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Where something can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// A web page (a list archive's message page).
    Url(String),
    /// The command that shows it.
    Command(String),
}

/// A table cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Text(String),
    /// A link and the word a URL is shown as.
    Link(Link, &'static str),
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

/// The document being written.
pub struct Doc {
    pub format: Format,
    pub out: String,
}

impl Doc {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            out: String::new(),
        }
    }

    /// A whole document titled `title`: in HTML, a page with a small table style, whose
    /// end [`Doc::finish`] writes.
    pub fn page(format: Format, title: &str) -> Self {
        let mut doc = Self::new(format);
        if format == Format::Html {
            doc.out.push_str(&format!(
                "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n\
                 <style>table{{border-collapse:collapse;margin-bottom:1em}}th,td{{border:1px solid #999;padding:2px 6px;text-align:left;vertical-align:top}}</style>\n</head>\n<body>\n",
                escape_html(title)
            ));
        }
        doc.heading(1, title);
        doc
    }

    /// The text, the page closed in HTML.
    pub fn finish(mut self) -> String {
        if self.format == Format::Html {
            self.out.push_str("</body>\n</html>\n");
        }
        self.out
    }

    pub fn esc(&self, s: &str) -> String {
        match self.format {
            Format::Markdown => escape_markdown(s),
            Format::Html => escape_html(s),
        }
    }

    pub fn heading(&mut self, level: usize, text: &str) {
        let t = self.esc(text);
        match self.format {
            Format::Markdown => self.out.push_str(&format!("{} {t}\n\n", "#".repeat(level))),
            Format::Html => self.out.push_str(&format!("<h{level}>{t}</h{level}>\n")),
        }
    }

    pub fn para(&mut self, text: &str) {
        let t = self.esc(text);
        match self.format {
            Format::Markdown => self.out.push_str(&format!("{t}\n\n")),
            Format::Html => self.out.push_str(&format!("<p>{t}</p>\n")),
        }
    }

    pub fn link(&self, l: &Link, label: &str) -> String {
        match (self.format, l) {
            (Format::Markdown, Link::Url(u)) => {
                let u: String = u
                    .chars()
                    .filter(|c| !"<>".contains(*c) && !c.is_whitespace())
                    .collect();
                format!("[{label}](<{u}>)")
            }
            (Format::Markdown, Link::Command(c)) => {
                format!("`{}`", c.replace('`', "'").replace(['\r', '\n', '|'], " "))
            }
            (Format::Html, Link::Url(u)) => {
                format!("<a href=\"{}\">{label}</a>", escape_html(u))
            }
            (Format::Html, Link::Command(c)) => format!("<code>{}</code>", escape_html(c)),
        }
    }

    fn cell(&self, c: &Cell) -> String {
        match c {
            Cell::Text(t) => self.esc(t),
            Cell::Link(l, label) => self.link(l, label),
        }
    }

    /// A table; cells are escaped (text) or written as links.
    pub fn table<C: Into<Cell> + Clone>(&mut self, head: &[&str], rows: &[Vec<C>]) {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| r.iter().map(|c| self.cell(&c.clone().into())).collect())
            .collect();
        let head: Vec<String> = head.iter().map(|h| self.esc(h)).collect();
        match self.format {
            Format::Markdown => {
                self.out.push_str(&format!("| {} |\n", head.join(" | ")));
                self.out
                    .push_str(&format!("|{}\n", "---|".repeat(head.len())));
                for r in rows {
                    self.out.push_str(&format!("| {} |\n", r.join(" | ")));
                }
                self.out.push('\n');
            }
            Format::Html => {
                self.out.push_str("<table>\n<thead><tr>");
                for h in head {
                    self.out.push_str(&format!("<th>{h}</th>"));
                }
                self.out.push_str("</tr></thead>\n<tbody>\n");
                for r in rows {
                    self.out.push_str("<tr>");
                    for c in r {
                        self.out.push_str(&format!("<td>{c}</td>"));
                    }
                    self.out.push_str("</tr>\n");
                }
                self.out.push_str("</tbody>\n</table>\n");
            }
        }
    }

    pub fn numbered(&mut self, items: &[String]) {
        match self.format {
            Format::Markdown => {
                for (i, t) in items.iter().enumerate() {
                    self.out
                        .push_str(&format!("{}. {}\n", i + 1, escape_markdown(t)));
                }
                self.out.push('\n');
            }
            Format::Html => {
                self.out.push_str("<ol>\n");
                for t in items {
                    self.out.push_str(&format!("<li>{}</li>\n", escape_html(t)));
                }
                self.out.push_str("</ol>\n");
            }
        }
    }
}

/// The value, or `-` when there is none.
pub fn or_dash(v: Option<&str>) -> String {
    v.map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("-")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_escaped_in_both_formats() {
        let evil = "<script>alert(1)</script> | *x* [a](b)";
        let mut md = Doc::new(Format::Markdown);
        md.table(&["a"], &[vec![evil.to_string()]]);
        assert!(!md.out.contains("<script>"), "{}", md.out);
        assert!(md.out.contains("\\|"), "{}", md.out);
        let mut html = Doc::new(Format::Html);
        html.table(
            &["a", "b"],
            &[vec![
                Cell::Text(evil.into()),
                Cell::Link(Link::Url("http://x/\"><script>".into()), "mail"),
            ]],
        );
        assert!(!html.out.contains("<script>"), "{}", html.out);
        assert!(html.out.contains("&lt;script&gt;"), "{}", html.out);
    }
}
