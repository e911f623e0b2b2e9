//! Full-text search over the archive: the query language, its translation to an SQLite
//! FTS5 expression plus SQL filters, and ranked results with snippets (bm25).
//!
//! Query language (terms are combined with AND unless joined by `OR`):
//! - `word`, `"a phrase"`, `word*` (prefix): anywhere in subject, sender, recipients, body
//!   or attachment names;
//! - `from:x`, `to:x` (To and Cc), `subject:x`, with a word or a quoted phrase;
//! - `list:NAME`, `has:attachment`, `date:2012-05-01..2012-07-31` (either end may be
//!   omitted; `2012` and `2012-05` stand for the whole year or month);
//! - `-term` excludes; `a OR b` matches either. `OR` binds tighter than the implicit AND:
//!   `from:amy OR from:bob agenda` is `(from:amy OR from:bob) AND agenda`.

use serde::Serialize;
use sqlx::{Row, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid query: {0}")]
    Query(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// One full-text condition.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Text {
    column: Option<&'static str>,
    phrase: String,
    prefix: bool,
}

/// One term of the query, before AND/OR grouping.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Text(Text),
    List(String),
    HasAttachment,
    Date(Option<i64>, Option<i64>),
}

/// A parsed query: groups are ANDed, terms inside a group ORed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    groups: Vec<Vec<Term>>,
    negated: Vec<Term>,
}

fn tokens(q: &str) -> Result<Vec<(bool, String)>> {
    // Returns (quoted-somewhere, raw token). Quotes may start mid-token (from:"a b").
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut quoted = false;
    for ch in q.chars() {
        match ch {
            '"' => {
                in_quote = !in_quote;
                quoted = true;
                cur.push(ch);
            }
            c if c.is_whitespace() && !in_quote => {
                if !cur.is_empty() {
                    out.push((quoted, std::mem::take(&mut cur)));
                }
                quoted = false;
            }
            c => cur.push(c),
        }
    }
    if in_quote {
        return Err(Error::Query("unbalanced double quote".into()));
    }
    if !cur.is_empty() {
        out.push((quoted, cur));
    }
    Ok(out)
}

fn parse_day(s: &str, end: bool) -> Result<i64> {
    use chrono::NaiveDate;
    let bad = || Error::Query(format!("bad date {s:?}: use YYYY, YYYY-MM or YYYY-MM-DD"));
    let parts: Vec<&str> = s.split('-').collect();
    let num = |x: &str| x.parse::<u32>().map_err(|_| bad());
    let (y, m, d) = match parts.as_slice() {
        [y] => (num(y)? as i32, None, None),
        [y, m] => (num(y)? as i32, Some(num(m)?), None),
        [y, m, d] => (num(y)? as i32, Some(num(m)?), Some(num(d)?)),
        _ => return Err(bad()),
    };
    let start = NaiveDate::from_ymd_opt(y, m.unwrap_or(1), d.unwrap_or(1)).ok_or_else(bad)?;
    let date = if !end {
        start
    } else if d.is_some() {
        start.succ_opt().ok_or_else(bad)?
    } else if let Some(m) = m {
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        NaiveDate::from_ymd_opt(ny, nm, 1).ok_or_else(bad)?
    } else {
        NaiveDate::from_ymd_opt(y + 1, 1, 1).ok_or_else(bad)?
    };
    Ok(date
        .and_hms_opt(0, 0, 0)
        .ok_or_else(bad)?
        .and_utc()
        .timestamp())
}

fn unquote(s: &str) -> String {
    s.trim_matches('"').to_string()
}

fn term(tok: &str) -> Result<Term> {
    let text = |column, v: &str| {
        let prefix = v.ends_with('*') && !v.starts_with('"');
        let phrase = unquote(v.trim_end_matches('*'));
        if phrase.trim().is_empty() {
            return Err(Error::Query(format!("empty term in {tok:?}")));
        }
        Ok(Term::Text(Text {
            column,
            phrase,
            prefix,
        }))
    };
    if let Some((key, value)) = tok.split_once(':')
        && !key.starts_with('"')
    {
        match key.to_ascii_lowercase().as_str() {
            "from" => return text(Some("sender"), value),
            "to" => return text(Some("recipients"), value),
            "subject" => return text(Some("subject"), value),
            "list" => {
                let v = unquote(value);
                if v.is_empty() {
                    return Err(Error::Query("list: needs a list name".into()));
                }
                return Ok(Term::List(v));
            }
            "has" => {
                return match value.to_ascii_lowercase().as_str() {
                    "attachment" | "attachments" => Ok(Term::HasAttachment),
                    other => Err(Error::Query(format!(
                        "unknown has:{other} (try has:attachment)"
                    ))),
                };
            }
            "date" => {
                let v = unquote(value);
                let (a, b) = match v.split_once("..") {
                    Some((a, b)) => (a, b),
                    None => (v.as_str(), v.as_str()),
                };
                let from = (!a.is_empty()).then(|| parse_day(a, false)).transpose()?;
                let to = (!b.is_empty()).then(|| parse_day(b, true)).transpose()?;
                if from.is_none() && to.is_none() {
                    return Err(Error::Query("date: needs at least one end".into()));
                }
                return Ok(Term::Date(from, to));
            }
            _ => {}
        }
    }
    text(None, tok)
}

impl Query {
    pub fn parse(q: &str) -> Result<Self> {
        let toks = tokens(q)?;
        let mut query = Query::default();
        let mut join_next = false;
        for (i, (quoted, tok)) in toks.iter().enumerate() {
            if tok == "OR" && !quoted {
                if query.groups.is_empty() || join_next || i + 1 == toks.len() {
                    return Err(Error::Query("OR needs a term on each side".into()));
                }
                join_next = true;
                continue;
            }
            if let Some(rest) = tok.strip_prefix('-').filter(|r| !r.is_empty()) {
                if join_next {
                    return Err(Error::Query("cannot OR a negated term".into()));
                }
                query.negated.push(term(rest)?);
                continue;
            }
            let t = term(tok)?;
            if join_next {
                let g = query.groups.last_mut().expect("checked above");
                g.push(t);
                join_next = false;
            } else {
                query.groups.push(vec![t]);
            }
        }
        for g in &query.groups {
            if g.len() > 1 && g.iter().any(|t| !matches!(t, Term::Text(_))) {
                return Err(Error::Query(
                    "OR joins words and from:/to:/subject: terms, not list:/has:/date:".into(),
                ));
            }
        }
        if query.groups.is_empty() && query.negated.is_empty() {
            return Err(Error::Query("empty query".into()));
        }
        Ok(query)
    }
}

fn fts_text(t: &Text) -> String {
    let quoted = format!("\"{}\"", t.phrase.replace('"', "\"\""));
    let star = if t.prefix { " *" } else { "" };
    match t.column {
        Some(c) => format!("{c} : {quoted}{star}"),
        None => format!("{quoted}{star}"),
    }
}

/// SQL pieces for a query: an FTS5 MATCH expression (if any) and WHERE conditions.
struct Plan {
    matched: Option<String>,
    excluded: Option<String>,
    wheres: Vec<String>,
    binds: Vec<Bind>,
}

enum Bind {
    Text(String),
    Int(i64),
}

fn plan(q: &Query) -> Plan {
    let mut p = Plan {
        matched: None,
        excluded: None,
        wheres: Vec::new(),
        binds: Vec::new(),
    };
    let mut positives = Vec::new();
    let filter = |t: &Term, negate: bool, p: &mut Plan| {
        let not = if negate { "NOT " } else { "" };
        match t {
            Term::List(l) => {
                p.wheres.push(format!(
                    "{not}EXISTS (SELECT 1 FROM message_lists ml WHERE ml.message = m.id AND ml.list = ?)"
                ));
                p.binds.push(Bind::Text(l.clone()));
            }
            Term::HasAttachment => p.wheres.push(format!("{not}(m.attachment_count > 0)")),
            Term::Date(a, b) => {
                let mut c = Vec::new();
                if let Some(a) = a {
                    c.push("m.date >= ?");
                    p.binds.push(Bind::Int(*a));
                }
                if let Some(b) = b {
                    c.push("m.date < ?");
                    p.binds.push(Bind::Int(*b));
                }
                p.wheres
                    .push(format!("{not}(m.date IS NOT NULL AND {})", c.join(" AND ")));
            }
            Term::Text(_) => {}
        }
    };
    for g in &q.groups {
        let texts: Vec<String> = g
            .iter()
            .filter_map(|t| match t {
                Term::Text(t) => Some(fts_text(t)),
                _ => None,
            })
            .collect();
        if texts.is_empty() {
            for t in g {
                filter(t, false, &mut p);
            }
        } else {
            positives.push(format!("({})", texts.join(" OR ")));
        }
    }
    let mut negatives = Vec::new();
    for t in &q.negated {
        match t {
            Term::Text(t) => negatives.push(fts_text(t)),
            other => filter(other, true, &mut p),
        }
    }
    if !positives.is_empty() {
        let mut expr = positives.join(" AND ");
        for n in &negatives {
            expr = format!("{expr} NOT {n}");
        }
        p.matched = Some(expr);
    } else if !negatives.is_empty() {
        p.excluded = Some(negatives.join(" OR "));
    }
    p
}

/// One search result.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub id: i64,
    pub message_id: String,
    pub thread_id: Option<i64>,
    pub date: Option<i64>,
    pub from: String,
    pub subject: String,
    pub snippet: String,
    /// bm25 score (lower is better); absent when the query has no words.
    pub rank: Option<f64>,
}

/// Column weights for bm25: subject, sender, recipients, body, attachment names.
const BM25: &str = "bm25(message_fts, 5.0, 2.0, 1.0, 1.0, 2.0)";

/// Which messages a search may return (the web view's access rules): those archived
/// under one of `lists`, and, with `unlisted`, those archived under no list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub lists: Vec<String>,
    pub unlisted: bool,
}

/// How [`search_with`] runs: an optional [`Scope`], and the marks put around matched
/// words in snippets.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    pub scope: Option<&'a Scope>,
    pub marks: (&'a str, &'a str),
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self {
            scope: None,
            marks: ("[", "]"),
        }
    }
}

/// Runs `query` and returns at most `limit` hits, best first (newest first when the query
/// has no words to rank by).
pub async fn search(pool: &SqlitePool, query: &str, limit: u32, offset: u32) -> Result<Vec<Hit>> {
    search_with(pool, query, &Options::default(), limit, offset).await
}

/// As [`search`], limited to a scope and with the given snippet marks.
pub async fn search_with(
    pool: &SqlitePool,
    query: &str,
    opts: &Options<'_>,
    limit: u32,
    offset: u32,
) -> Result<Vec<Hit>> {
    let q = Query::parse(query)?;
    let mut p = plan(&q);
    if let Some(scope) = opts.scope {
        let mut any = Vec::new();
        if !scope.lists.is_empty() {
            let marks = vec!["?"; scope.lists.len()].join(", ");
            any.push(format!(
                "EXISTS (SELECT 1 FROM message_lists ml WHERE ml.message = m.id AND ml.list IN ({marks}))"
            ));
            p.binds
                .extend(scope.lists.iter().map(|l| Bind::Text(l.clone())));
        }
        if scope.unlisted {
            any.push("NOT EXISTS (SELECT 1 FROM message_lists ml WHERE ml.message = m.id)".into());
        }
        if any.is_empty() {
            return Ok(Vec::new());
        }
        p.wheres.push(format!("({})", any.join(" OR ")));
    }
    let select = "m.id, m.message_id, m.thread_id, m.date,
        COALESCE(m.from_name || ' <' || m.from_addr || '>', m.from_addr, m.from_name, '') AS sender,
        COALESCE(m.subject, '') AS subject";
    let sql = if let Some(expr) = &p.matched {
        // Rank first, on the index alone (joined to messages only when a filter needs
        // it), then fetch fields and snippets for the page of hits. CROSS JOIN keeps the
        // page as the outer loop, so snippets are made for `limit` rows, not every match.
        let expr = sql_string(expr);
        let ranked = if p.wheres.is_empty() {
            format!(
                "SELECT rowid AS id, {BM25} AS rank FROM message_fts
                 WHERE message_fts MATCH {expr} ORDER BY rank LIMIT ? OFFSET ?"
            )
        } else {
            format!(
                "SELECT m.id AS id, {BM25} AS rank
                 FROM message_fts JOIN messages m ON m.id = message_fts.rowid
                 WHERE message_fts MATCH {expr} AND {} ORDER BY rank LIMIT ? OFFSET ?",
                p.wheres.join(" AND ")
            )
        };
        let (open, close) = (sql_string(opts.marks.0), sql_string(opts.marks.1));
        format!(
            "WITH top AS ({ranked})
             SELECT {select}, snippet(message_fts, -1, {open}, {close}, '…', 16) AS snip, top.rank
             FROM top CROSS JOIN message_fts ON message_fts.rowid = top.id
                      JOIN messages m ON m.id = top.id
             WHERE message_fts MATCH {expr}
             ORDER BY top.rank"
        )
    } else {
        let mut wheres = p.wheres.clone();
        wheres.push("m.quarantine IS NULL".into());
        if let Some(ex) = &p.excluded {
            wheres.push(format!(
                "m.id NOT IN (SELECT rowid FROM message_fts WHERE message_fts MATCH {})",
                sql_string(ex)
            ));
        }
        format!(
            "SELECT {select}, substr(COALESCE(f.body, ''), 1, 160) AS snip, NULL AS rank
             FROM messages m LEFT JOIN message_fts f ON f.rowid = m.id
             WHERE {} ORDER BY m.date DESC, m.id DESC LIMIT ? OFFSET ?",
            wheres.join(" AND ")
        )
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in &p.binds {
        query = match b {
            Bind::Text(s) => query.bind(s.clone()),
            Bind::Int(i) => query.bind(*i),
        };
    }
    let rows = query
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.message().contains("fts5") => {
                Error::Query(d.message().to_string())
            }
            _ => Error::Db(e),
        })?;
    Ok(rows
        .into_iter()
        .map(|r| Hit {
            id: r.get(0),
            message_id: r.get(1),
            thread_id: r.get(2),
            date: r.get(3),
            from: r.get(4),
            subject: r.get(5),
            snippet: r
                .get::<Option<String>, _>(6)
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            rank: r.get(7),
        })
        .collect())
}

/// An SQL string literal (the MATCH expression is built from our own quoting; binding it
/// would be equivalent, but an inline literal lets SQLite plan the FTS lookup first).
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(q: &str) -> Option<String> {
        plan(&Query::parse(q).unwrap()).matched
    }

    #[test]
    fn words_phrases_and_fields() {
        assert_eq!(expr("smart grid").unwrap(), r#"("smart") AND ("grid")"#);
        assert_eq!(expr(r#""home network""#).unwrap(), r#"("home network")"#);
        assert_eq!(
            expr(r#"from:"Richard Stuart" subject:agenda"#).unwrap(),
            r#"(sender : "Richard Stuart") AND (subject : "agenda")"#
        );
        assert_eq!(
            expr("to:sg15@itu.int").unwrap(),
            r#"(recipients : "sg15@itu.int")"#
        );
        assert_eq!(expr("meet*").unwrap(), r#"("meet" *)"#);
    }

    #[test]
    fn or_binds_tighter_than_and_and_negation() {
        assert_eq!(
            expr("from:amy OR from:bob agenda -draft").unwrap(),
            r#"(sender : "amy" OR sender : "bob") AND ("agenda") NOT "draft""#
        );
    }

    #[test]
    fn filters_become_sql() {
        let p = plan(&Query::parse("list:jca has:attachment date:2012-05-01..2012-07-31").unwrap());
        assert!(p.matched.is_none());
        assert_eq!(p.wheres.len(), 3);
        let ints: Vec<i64> = p
            .binds
            .iter()
            .filter_map(|b| match b {
                Bind::Int(i) => Some(*i),
                _ => None,
            })
            .collect();
        // 2012-05-01T00:00Z and 2012-08-01T00:00Z (end day inclusive).
        assert_eq!(ints, vec![1_335_830_400, 1_343_779_200]);
        let p = plan(&Query::parse("-word").unwrap());
        assert_eq!(p.excluded.as_deref(), Some(r#""word""#));
    }

    #[test]
    fn date_shorthands() {
        assert_eq!(parse_day("2012", false).unwrap(), 1_325_376_000);
        assert_eq!(parse_day("2012", true).unwrap(), 1_356_998_400);
        assert_eq!(parse_day("2012-12", true).unwrap(), 1_356_998_400);
        assert!(parse_day("2012-13", false).is_err());
    }

    #[test]
    fn bad_queries_are_errors() {
        for q in [
            "",
            "OR x",
            "x OR",
            "\"open",
            "has:pony",
            "date:..",
            "list:a OR b",
            "x OR -y",
        ] {
            assert!(Query::parse(q).is_err(), "{q:?} should fail");
        }
    }

    #[test]
    fn quotes_inside_terms_cannot_break_out() {
        let e = expr(r#"subject:"a""b""#).unwrap();
        assert!(e.starts_with("(subject : \""), "{e}");
    }
}
