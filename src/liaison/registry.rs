//! The organization registry: every body that sends or receives liaison statements, read
//! from `config/organizations.toml` (every key commented there) plus the extra aliases
//! kept in the database table `org_aliases`.
//!
//! [`Registry::resolve`] finds the organization a free-text phrase names ("ITU-T Study
//! Group 15", "Q15/15", "3GPP TSG SA WG2", "IEEE P1901.2", "ISO/IEC JTC 1/SC 25"), as the
//! IETF Datatracker's alias table does for its liaison groups, and as the liaison notes
//! (§4.6) ask: normalise spacing, punctuation and "Q.14/15" ↔ "Q14/15" forms, then look
//! the name up.
//!
//! **Normalisation.** Text is lower-cased and cut into tokens at every character that is
//! not a letter or digit, and between letters and digits ("SG15" = "SG 15" = "sg-15" =
//! `sg 15`; "P1901.2" = `p 1901 2`). Then word pairs that templates spell out are
//! shortened: "Study Group" → `sg`, "Working Group" → `wg`, "Working Party" → `wp`,
//! "Technical Committee" → `tc`, "Question(s)" → `q`. Aliases are normalised the same way
//! once, at load, and indexed by their first token, so resolving a phrase costs one pass
//! over its tokens with a hash lookup each.
//!
//! **Sub-groups** are patterns: `{n}` and `{m}` match a number, `{x}` and `{y}` one
//! letter; the canonical name (the `from_subgroup` returned) is the sub-group's `name`
//! with the captured values put in ("Question 15/15" → `Q15/15`, "TSG SA WG2" → `SA2`).
//!
//! **Specificity.** Of all matches in a phrase the one covering most tokens wins, then the
//! one with more literal (non-placeholder) tokens, then a sub-group over a plain name,
//! then the earliest. So "ITU-T SG15" beats "ITU-T", "IEC SMB SG3" beats "IEC", and
//! "Q25/2" (an ITU-D Question, written out) beats the ITU-T SG2 pattern `Q{n}/2`. When the
//! winner is a plain name, the best sub-group match of the same organization elsewhere in
//! the phrase is attached ("ITU-T SG15 Working Party 1/15" → `itu-t-sg15`, `WP1/15`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors loading or validating the registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read organizations {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid organizations file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid organizations file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("alias {alias:?}: {message}")]
    Alias { alias: String, message: String },
    #[error("no organization {0:?}")]
    UnknownOrg(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The ids every shipped registry must have: the senders of the labelled statement set
/// (tests/fixtures/liaison/README.md) and the group itself.
pub const REQUIRED_IDS: &[&str] = &[
    "itu-t-tsag",
    "itu-t-sg2",
    "itu-t-sg5",
    "itu-t-sg9",
    "itu-t-sg11",
    "itu-t-sg12",
    "itu-t-sg13",
    "itu-t-sg15",
    "itu-t-sg16",
    "itu-t-sg17",
    "jca-iot",
    "itu-r",
    "itu-d",
    "iec-smb-sg3",
    "iec",
    "iso",
    "iso-iec-jtc1",
    "ieee",
    "ietf",
    "etsi",
    "3gpp",
    "cen-cenelec",
    "nist-sgip",
    "atis",
    "ttc",
    "tta",
    "ccsa",
    "arib",
    "broadband-forum",
    "hgi",
    "homeplug",
    "zigbee-alliance",
    "wi-sun",
    "oasis",
    "upnp-forum",
    "dlna",
    "academia",
    "jca-sghn",
];

/// What kind of body an organization is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An ITU-T Study Group, TSAG or a JCA.
    ItuTGroup,
    ItuR,
    ItuD,
    /// An international standards body (IEC, ISO, IEEE, IETF, 3GPP, …).
    Sdo,
    /// An industry forum or alliance.
    Forum,
    /// A regional standards body (CEN-CENELEC, ETSI).
    Regional,
    /// A national standards body or programme (ATIS, TTC, TTA, CCSA, ARIB, NIST SGIP).
    National,
    Academia,
    /// The group itself.
    Internal,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ItuTGroup => "itu-t-group",
            Kind::ItuR => "itu-r",
            Kind::ItuD => "itu-d",
            Kind::Sdo => "sdo",
            Kind::Forum => "forum",
            Kind::Regional => "regional",
            Kind::National => "national",
            Kind::Academia => "academia",
            Kind::Internal => "internal",
        }
    }
}

/// A sub-group pattern: `"Q{n}/15"`, or a table with the canonical `name` and the
/// `aliases` (patterns) that are matched.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Subgroup {
    /// The name is matched as written and returned as it is (placeholders filled in).
    Name(String),
    /// `name` is what is returned; only `aliases` are matched.
    Full { name: String, aliases: Vec<String> },
}

impl Subgroup {
    pub fn name(&self) -> &str {
        match self {
            Subgroup::Name(n) | Subgroup::Full { name: n, .. } => n,
        }
    }

    fn patterns(&self) -> Vec<&str> {
        match self {
            Subgroup::Name(n) => vec![n.as_str()],
            Subgroup::Full { aliases, .. } => aliases.iter().map(String::as_str).collect(),
        }
    }
}

/// One organization, as `config/organizations.toml` declares it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub kind: Kind,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub liaison_contacts: Vec<String>,
    #[serde(default)]
    pub subgroups: Vec<Subgroup>,
    /// Aliases added at run time (table `org_aliases`).
    #[serde(default, skip_deserializing)]
    pub added_aliases: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    org: Vec<Organization>,
}

/// What a phrase names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// The organization's id.
    pub org: String,
    /// The sending unit below it, canonically spelled (`Q15/15`, `SA2`, `IEEE 802.15`).
    pub from_subgroup: Option<String>,
}

/// One alias or sub-group pattern found in a phrase; `start..end` are token positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub org: usize,
    pub subgroup: Option<String>,
    pub start: usize,
    pub end: usize,
    literals: usize,
}

impl Match {
    fn score(&self) -> (usize, usize, bool) {
        (
            self.end - self.start,
            self.literals,
            self.subgroup.is_some(),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PTok {
    Lit(Box<str>),
    /// A number; the slot names the placeholder.
    Num(char),
    /// One letter.
    Letter(char),
}

#[derive(Debug, Clone)]
struct Pattern {
    toks: Vec<PTok>,
    org: usize,
    /// Canonical sub-group name template; `None` for a plain alias.
    subgroup: Option<Box<str>>,
    literals: usize,
}

/// The loaded registry: organizations plus the precompiled alias index.
#[derive(Debug, Clone)]
pub struct Registry {
    orgs: Vec<Organization>,
    by_id: HashMap<String, usize>,
    patterns: Vec<Pattern>,
    /// First literal token → patterns starting with it.
    index: HashMap<Box<str>, Vec<u32>>,
    /// Patterns starting with a placeholder.
    placeholder_first: Vec<u32>,
    /// Normalised plain aliases → organization (for conflict checks).
    plain: HashMap<Vec<PTok>, usize>,
    domains: HashMap<String, Vec<usize>>,
    contacts: HashMap<String, usize>,
}

/// Word pairs (and words) that templates spell out, and the token they become.
const SYNONYMS: &[(&[&str], &str)] = &[
    (&["study", "group"], "sg"),
    (&["study", "groups"], "sg"),
    (&["working", "group"], "wg"),
    (&["working", "groups"], "wg"),
    (&["working", "party"], "wp"),
    (&["working", "parties"], "wp"),
    (&["technical", "committee"], "tc"),
    (&["technical", "committees"], "tc"),
    (&["question"], "q"),
    (&["questions"], "q"),
];

/// Lower-cases `text` and cuts it into tokens (see the module documentation).
fn tokenize<'a>(lower: &'a str, out: &mut Vec<&'a str>) {
    let mut start: Option<(usize, bool)> = None; // (byte offset, is digit run)
    for (i, c) in lower.char_indices() {
        if c.is_alphanumeric() {
            let digit = c.is_ascii_digit();
            match start {
                Some((s, d)) if d != digit => {
                    out.push(&lower[s..i]);
                    start = Some((i, digit));
                }
                Some(_) => {}
                None => start = Some((i, digit)),
            }
        } else if let Some((s, _)) = start.take() {
            out.push(&lower[s..i]);
        }
    }
    if let Some((s, _)) = start {
        out.push(&lower[s..]);
    }
    // Synonyms, in place.
    let mut w = 0;
    let mut r = 0;
    while r < out.len() {
        let mut replaced = false;
        for (words, short) in SYNONYMS {
            if out.len() - r >= words.len() && out[r..r + words.len()] == **words {
                out[w] = short;
                r += words.len();
                replaced = true;
                break;
            }
        }
        if !replaced {
            out[w] = out[r];
            r += 1;
        }
        w += 1;
    }
    out.truncate(w);
}

/// The normalised form of `text`, tokens joined by single spaces (for display and tests).
pub fn normalize(text: &str) -> String {
    let lower = text.to_lowercase();
    let mut toks = Vec::new();
    tokenize(&lower, &mut toks);
    toks.join(" ")
}

/// Compiles a pattern: literal text with `{n}`/`{m}` (numbers) and `{x}`/`{y}` (letters).
fn compile(pattern: &str) -> std::result::Result<Vec<PTok>, String> {
    let mut toks = Vec::new();
    let mut rest = pattern;
    loop {
        let (lit, after) = match rest.find('{') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let lower = lit.to_lowercase();
        let mut t = Vec::new();
        tokenize(&lower, &mut t);
        toks.extend(t.into_iter().map(|s| PTok::Lit(s.into())));
        let Some(after) = after else { break };
        let Some(close) = after.find('}') else {
            return Err(format!("unclosed placeholder in {pattern:?}"));
        };
        let slot = &after[1..close];
        let slot_char = slot.chars().next().unwrap_or(' ');
        toks.push(match slot {
            "n" | "m" => PTok::Num(slot_char),
            "x" | "y" => PTok::Letter(slot_char),
            other => {
                return Err(format!(
                    "unknown placeholder {{{other}}} in {pattern:?} (use {{n}}, {{m}}, {{x}}, {{y}})"
                ));
            }
        });
        rest = &after[close + 1..];
    }
    if toks.is_empty() {
        return Err(format!("{pattern:?} has no letters or digits"));
    }
    Ok(toks)
}

fn placeholders(toks: &[PTok]) -> HashSet<char> {
    toks.iter()
        .filter_map(|t| match t {
            PTok::Num(c) | PTok::Letter(c) => Some(*c),
            PTok::Lit(_) => None,
        })
        .collect()
}

/// Slots a name template uses, read from the raw text.
fn template_slots(name: &str) -> HashSet<char> {
    let mut slots = HashSet::new();
    for slot in ['n', 'm', 'x', 'y'] {
        if name.contains(&format!("{{{slot}}}")) {
            slots.insert(slot);
        }
    }
    slots
}

fn email_ok(a: &str) -> bool {
    matches!(a.rsplit_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.'))
}

impl Registry {
    /// Reads and validates the file at `path`, then merges the aliases of the database
    /// table `org_aliases`. A stored alias whose organization is no longer in the file, or
    /// that now names another organization, is skipped with a warning.
    pub async fn load(path: &Path, pool: &sqlx::SqlitePool) -> Result<Self> {
        let mut reg = Self::from_file(path)?;
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT org, alias FROM org_aliases ORDER BY added_at, rowid")
                .fetch_all(pool)
                .await?;
        for (org, alias) in rows {
            if let Err(e) = reg.add_alias(&org, &alias) {
                tracing::warn!(org, alias, error = %e, "stored organization alias skipped");
            }
        }
        Ok(reg)
    }

    /// Reads and validates the file at `path` (no database aliases).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses and validates registry text; `origin` names it in error messages.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let file: File = toml::from_str(text).map_err(|e| Error::Parse {
            path: origin.to_owned(),
            source: Box::new(e),
        })?;
        Self::build(file.org, origin)
    }

    fn build(orgs: Vec<Organization>, origin: &Path) -> Result<Self> {
        let invalid = |i: usize, id: &str, message: String| Error::Invalid {
            path: origin.to_owned(),
            message: format!("[[org]] #{} ({id}): {message}", i + 1),
        };
        let mut reg = Registry {
            orgs: Vec::new(),
            by_id: HashMap::new(),
            patterns: Vec::new(),
            index: HashMap::new(),
            placeholder_first: Vec::new(),
            plain: HashMap::new(),
            domains: HashMap::new(),
            contacts: HashMap::new(),
        };
        // Sub-group patterns may repeat within one organization (two spellings of one
        // unit); across organizations they must not.
        let mut sub_owner: HashMap<Vec<PTok>, usize> = HashMap::new();
        for (i, org) in orgs.iter().enumerate() {
            let id = org.id.as_str();
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(invalid(
                    i,
                    id,
                    "id must be lower-case letters, digits and '-'".into(),
                ));
            }
            if let Some(&j) = reg.by_id.get(id) {
                return Err(invalid(
                    i,
                    id,
                    format!("duplicate id {id:?} (first at [[org]] #{})", j + 1),
                ));
            }
            if org.name.trim().is_empty() {
                return Err(invalid(i, id, "name is empty".into()));
            }
            reg.by_id.insert(org.id.clone(), i);
            let mut seen = HashSet::new();
            for alias in std::iter::once(&org.name).chain(&org.aliases) {
                if !seen.insert(alias.to_lowercase()) && alias != &org.name {
                    return Err(invalid(i, id, format!("alias {alias:?} is listed twice")));
                }
                if alias.contains('{') {
                    return Err(invalid(
                        i,
                        id,
                        format!("alias {alias:?}: placeholders belong in subgroups"),
                    ));
                }
                let toks = compile(alias).map_err(|m| invalid(i, id, format!("alias: {m}")))?;
                match reg.plain.get(&toks) {
                    Some(&j) if j != i => {
                        return Err(invalid(
                            i,
                            id,
                            format!(
                                "alias {alias:?} also names {} (duplicate alias)",
                                orgs[j].id
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => reg.push_plain(toks, i),
                }
            }
            for sg in &org.subgroups {
                let name = sg.name();
                let needed = template_slots(name);
                let patterns = sg.patterns();
                if patterns.is_empty() {
                    return Err(invalid(i, id, format!("subgroup {name:?} has no aliases")));
                }
                for p in patterns {
                    let toks = compile(p).map_err(|m| invalid(i, id, format!("subgroup: {m}")))?;
                    if !needed.is_subset(&placeholders(&toks)) {
                        return Err(invalid(
                            i,
                            id,
                            format!(
                                "subgroup {name:?}: pattern {p:?} lacks a placeholder the name uses"
                            ),
                        ));
                    }
                    if let Some(&j) = sub_owner.get(&toks)
                        && j != i
                    {
                        return Err(invalid(
                            i,
                            id,
                            format!(
                                "subgroup pattern {p:?} also belongs to {} (duplicate alias)",
                                orgs[j].id
                            ),
                        ));
                    }
                    if let Some(&j) = reg.plain.get(&toks)
                        && j != i
                    {
                        return Err(invalid(
                            i,
                            id,
                            format!(
                                "subgroup pattern {p:?} is an alias of {} (duplicate alias)",
                                orgs[j].id
                            ),
                        ));
                    }
                    sub_owner.insert(toks.clone(), i);
                    reg.push(Pattern {
                        literals: toks.iter().filter(|t| matches!(t, PTok::Lit(_))).count(),
                        toks,
                        org: i,
                        subgroup: Some(name.into()),
                    });
                }
            }
            for d in &org.domains {
                let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
                if d.is_empty() || d.contains('@') || d.contains(char::is_whitespace) {
                    return Err(invalid(i, id, format!("bad domain {d:?}")));
                }
                reg.domains.entry(d).or_default().push(i);
            }
            for c in &org.liaison_contacts {
                if !email_ok(c) {
                    return Err(invalid(
                        i,
                        id,
                        format!("liaison contact {c:?} is not an address"),
                    ));
                }
                if let Some(&j) = reg.contacts.get(&c.to_ascii_lowercase())
                    && j != i
                {
                    return Err(invalid(
                        i,
                        id,
                        format!("liaison contact {c:?} also belongs to {}", orgs[j].id),
                    ));
                }
                reg.contacts.insert(c.to_ascii_lowercase(), i);
            }
        }
        // A plain alias that equals another organization's sub-group pattern.
        for (toks, &i) in &sub_owner {
            if let Some(&j) = reg.plain.get(toks)
                && j != i
            {
                return Err(Error::Invalid {
                    path: origin.to_owned(),
                    message: format!(
                        "[[org]] #{} ({}): an alias equals a subgroup pattern of {} (duplicate alias)",
                        j + 1,
                        orgs[j].id,
                        orgs[i].id
                    ),
                });
            }
        }
        reg.orgs = orgs;
        Ok(reg)
    }

    fn push_plain(&mut self, toks: Vec<PTok>, org: usize) {
        self.plain.insert(toks.clone(), org);
        self.push(Pattern {
            literals: toks.len(),
            toks,
            org,
            subgroup: None,
        });
    }

    fn push(&mut self, p: Pattern) {
        let n = self.patterns.len() as u32;
        match &p.toks[0] {
            PTok::Lit(s) => self.index.entry(s.clone()).or_default().push(n),
            _ => self.placeholder_first.push(n),
        }
        self.patterns.push(p);
    }

    /// Adds an alias for `org` (in memory only; the CLI stores it in `org_aliases`).
    /// Refused when it already names another organization; `Ok(false)` when `org` already
    /// has it.
    pub fn add_alias(&mut self, org: &str, alias: &str) -> Result<bool> {
        let bad = |message: String| Error::Alias {
            alias: alias.to_string(),
            message,
        };
        let &i = self
            .by_id
            .get(org)
            .ok_or_else(|| Error::UnknownOrg(org.to_string()))?;
        if alias.contains('{') {
            return Err(bad("placeholders belong in subgroups".into()));
        }
        let toks = compile(alias).map_err(bad)?;
        if let Some(&j) = self.plain.get(&toks) {
            if j == i {
                return Ok(false);
            }
            return Err(bad(format!("already names {}", self.orgs[j].id)));
        }
        if let Some(p) = self.patterns.iter().find(|p| p.toks == toks && p.org != i) {
            return Err(bad(format!("already names {}", self.orgs[p.org].id)));
        }
        self.push_plain(toks, i);
        self.orgs[i].added_aliases.push(alias.to_string());
        Ok(true)
    }

    /// Every organization, in file order.
    pub fn orgs(&self) -> &[Organization] {
        &self.orgs
    }

    /// The organization with this id.
    pub fn get(&self, id: &str) -> Option<&Organization> {
        self.by_id.get(id).map(|&i| &self.orgs[i])
    }

    /// The organizations whose `domains` hold `domain` or one of its parents ("lists.ietf.org"
    /// → ietf), the most specific domain first.
    pub fn by_domain(&self, domain: &str) -> Vec<&Organization> {
        let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let mut out: Vec<&Organization> = Vec::new();
        let mut rest = d.as_str();
        loop {
            if let Some(v) = self.domains.get(rest) {
                for &i in v {
                    if !out.iter().any(|o| o.id == self.orgs[i].id) {
                        out.push(&self.orgs[i]);
                    }
                }
            }
            match rest.split_once('.') {
                Some((_, parent)) if parent.contains('.') => rest = parent,
                _ => break,
            }
        }
        out
    }

    /// The organization whose liaison contact `address` is; otherwise [`by_domain`] of its
    /// domain.
    ///
    /// [`by_domain`]: Registry::by_domain
    pub fn by_address(&self, address: &str) -> Vec<&Organization> {
        let a = address.trim().to_ascii_lowercase();
        if let Some(&i) = self.contacts.get(&a) {
            return vec![&self.orgs[i]];
        }
        match a.rsplit_once('@') {
            Some((_, d)) => self.by_domain(d),
            None => Vec::new(),
        }
    }

    /// Every alias and sub-group pattern that matches in `text`, at every position.
    pub fn matches(&self, text: &str) -> Vec<Match> {
        let lower = text.to_lowercase();
        let mut toks = Vec::with_capacity(16);
        tokenize(&lower, &mut toks);
        let mut out = Vec::new();
        let mut caps: [(char, &str); 4] = [(' ', ""); 4];
        for start in 0..toks.len() {
            let lit = self
                .index
                .get(toks[start])
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for &pi in lit.iter().chain(&self.placeholder_first) {
                let p = &self.patterns[pi as usize];
                if toks.len() - start < p.toks.len() {
                    continue;
                }
                let mut ncaps = 0;
                let ok = p.toks.iter().zip(&toks[start..]).all(|(pt, t)| match pt {
                    PTok::Lit(s) => **s == **t,
                    PTok::Num(c) => {
                        let ok = t.bytes().all(|b| b.is_ascii_digit());
                        if ok && ncaps < caps.len() {
                            caps[ncaps] = (*c, t);
                            ncaps += 1;
                        }
                        ok
                    }
                    PTok::Letter(c) => {
                        let ok = t.len() == 1 && t.as_bytes()[0].is_ascii_alphabetic();
                        if ok && ncaps < caps.len() {
                            caps[ncaps] = (*c, t);
                            ncaps += 1;
                        }
                        ok
                    }
                });
                if !ok {
                    continue;
                }
                let subgroup = p.subgroup.as_deref().map(|tpl| {
                    let mut s = tpl.to_string();
                    for &(c, v) in &caps[..ncaps] {
                        let v = if v.as_bytes()[0].is_ascii_digit() {
                            v.to_string()
                        } else {
                            v.to_ascii_uppercase()
                        };
                        s = s.replace(&format!("{{{c}}}"), &v);
                    }
                    s
                });
                out.push(Match {
                    org: p.org,
                    subgroup,
                    start,
                    end: start + p.toks.len(),
                    literals: p.literals,
                });
            }
        }
        out
    }

    fn best(matches: &[Match]) -> Option<&Match> {
        let mut best: Option<&Match> = None;
        for m in matches {
            if best.is_none_or(|b| m.score() > b.score()) {
                best = Some(m);
            }
        }
        best
    }

    fn resolved(&self, m: &Match, all: &[Match]) -> Resolved {
        let subgroup = m.subgroup.clone().or_else(|| {
            let same: Vec<Match> = all
                .iter()
                .filter(|x| x.org == m.org && x.subgroup.is_some())
                .cloned()
                .collect();
            Self::best(&same).and_then(|x| x.subgroup.clone())
        });
        Resolved {
            org: self.orgs[m.org].id.clone(),
            from_subgroup: subgroup,
        }
    }

    /// The organization `text` names, the most specific match winning (see the module
    /// documentation); `None` when nothing in it is known.
    pub fn resolve(&self, text: &str) -> Option<Resolved> {
        let all = self.matches(text);
        Self::best(&all).map(|m| self.resolved(m, &all))
    }

    /// Every organization `text` names ("ITU-T SG13, IEC SMB SG3, NIST SGIP"), in order of
    /// appearance, once each: matches are taken most specific first, skipping any that
    /// overlap one already taken.
    pub fn resolve_all(&self, text: &str) -> Vec<Resolved> {
        let all = self.matches(text);
        let mut order: Vec<&Match> = all.iter().collect();
        order.sort_by(|a, b| b.score().cmp(&a.score()).then(a.start.cmp(&b.start)));
        let mut taken: Vec<&Match> = Vec::new();
        for m in order {
            if taken.iter().all(|t| m.end <= t.start || m.start >= t.end) {
                taken.push(m);
            }
        }
        taken.sort_by_key(|m| m.start);
        let mut out: Vec<Resolved> = Vec::new();
        for m in taken {
            let r = self.resolved(m, &all);
            match out.iter_mut().find(|o| o.org == r.org) {
                Some(o) if o.from_subgroup.is_none() => o.from_subgroup = r.from_subgroup,
                Some(_) => {}
                None => out.push(r),
            }
        }
        out
    }

    /// The organization with id `key`, else the one `key` resolves to.
    pub fn find(&self, key: &str) -> Option<(&Organization, Option<String>)> {
        if let Some(o) = self.get(key) {
            return Some((o, None));
        }
        let r = self.resolve(key)?;
        self.get(&r.org).map(|o| (o, r.from_subgroup))
    }
}

/// Stores an alias in `org_aliases`; `false` when it was already stored.
pub async fn store_alias(pool: &sqlx::SqlitePool, org: &str, alias: &str) -> Result<bool> {
    let now = chrono::Utc::now().timestamp();
    let r =
        sqlx::query("INSERT OR IGNORE INTO org_aliases (org, alias, added_at) VALUES (?, ?, ?)")
            .bind(org)
            .bind(alias)
            .bind(now)
            .execute(pool)
            .await?;
    Ok(r.rows_affected() > 0)
}

/// Removes an alias from `org_aliases`; `false` when it was not stored there.
pub async fn delete_alias(pool: &sqlx::SqlitePool, org: &str, alias: &str) -> Result<bool> {
    let r = sqlx::query("DELETE FROM org_aliases WHERE org = ? AND alias = ?")
        .bind(org)
        .bind(alias)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Registry {
        Registry::from_toml(
            include_str!("../../config/organizations.toml"),
            Path::new("config/organizations.toml"),
        )
        .unwrap()
    }

    fn r(reg: &Registry, text: &str) -> Option<(String, Option<String>)> {
        reg.resolve(text).map(|r| (r.org, r.from_subgroup))
    }

    #[track_caller]
    fn is(reg: &Registry, text: &str, org: &str, sub: Option<&str>) {
        assert_eq!(
            r(reg, text),
            Some((org.to_string(), sub.map(String::from))),
            "{text:?}"
        );
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize("ITU-T Study Group 15"), "itu t sg 15");
        assert_eq!(normalize("SG15"), normalize("sg 15"));
        assert_eq!(normalize("Q.15/15"), "q 15 15");
        assert_eq!(normalize("Question 15/15"), "q 15 15");
        assert_eq!(normalize("IEEE P1901.2"), "ieee p 1901 2");
        assert_eq!(normalize("JCA-SG&HN"), "jca sg hn");
        assert_eq!(normalize("  Working   Party 1/15 "), "wp 1 15");
    }

    #[test]
    fn itu_t_forms() {
        let reg = shipped();
        for t in [
            "ITU-T Study Group 15",
            "SG15",
            "ITU-T SG 15",
            "itu-t sg15",
            "Study Group 15",
            "Secrétariat CE 15 / UIT-T CE 15",
        ] {
            is(&reg, t, "itu-t-sg15", None);
        }
        is(&reg, "Q15/15", "itu-t-sg15", Some("Q15/15"));
        is(&reg, "Question 15/15", "itu-t-sg15", Some("Q15/15"));
        is(&reg, "Q.4/15", "itu-t-sg15", Some("Q4/15"));
        is(&reg, "WP 1/15", "itu-t-sg15", Some("WP1/15"));
        is(
            &reg,
            "ITU-T SG15 Working Party 1/15",
            "itu-t-sg15",
            Some("WP1/15"),
        );
        is(
            &reg,
            "ITU-T Study Group 5, Working Party 1/5",
            "itu-t-sg5",
            Some("WP1/5"),
        );
        is(&reg, "ITU-T SG15 (Q1/15)", "itu-t-sg15", Some("Q1/15"));
        is(&reg, "TSAG", "itu-t-tsag", None);
        is(&reg, "ITU-T JCA-IoT", "jca-iot", None);
        for n in [2, 5, 9, 11, 12, 13, 16, 17] {
            is(&reg, &format!("ITU-T SG{n}"), &format!("itu-t-sg{n}"), None);
        }
        is(&reg, "Q1/2", "itu-t-sg2", Some("Q1/2"));
    }

    #[test]
    fn itu_r_and_itu_d() {
        let reg = shipped();
        is(&reg, "ITU-R WP 1A", "itu-r", Some("WP1A"));
        is(&reg, "Working Party 5A", "itu-r", Some("WP5A"));
        is(&reg, "Rapporteur for Question 25/2", "itu-d", Some("Q25/2"));
        is(&reg, "ITU-D Study Group 2", "itu-d", Some("SG2"));
        is(&reg, "ITU-D Q1/2", "itu-d", Some("Q1/2"));
        is(&reg, "Q24/2", "itu-d", Some("Q24/2"));
    }

    #[test]
    fn jca_forms() {
        let reg = shipped();
        for t in [
            "JCA-SGHN",
            "JCA-SG&HN",
            "ITU-T JCA-SG&HN",
            "jca sg&hn",
            "JCA on Smart Grid and Home Networking",
            "JCA-HN",
            "ITU-T JCA-SG&HN (formerly JCA-HN)",
        ] {
            is(&reg, t, "jca-sghn", None);
        }
    }

    #[test]
    fn other_bodies_and_subgroups() {
        let reg = shipped();
        is(&reg, "3GPP TSG SA WG2", "3gpp", Some("SA2"));
        is(&reg, "SA WG2", "3gpp", Some("SA2"));
        is(&reg, "S2", "3gpp", Some("SA2"));
        is(&reg, "RAN2", "3gpp", Some("RAN2"));
        is(&reg, "CT1", "3gpp", Some("CT1"));
        is(&reg, "TSG SA", "3gpp", Some("TSG SA"));
        is(
            &reg,
            "IEEE 802.15 Working Group",
            "ieee",
            Some("IEEE 802.15"),
        );
        is(&reg, "802.15", "ieee", Some("IEEE 802.15"));
        is(&reg, "IEEE P1901.2", "ieee", Some("IEEE P1901.2"));
        is(&reg, "P1901.2", "ieee", Some("IEEE P1901.2"));
        is(&reg, "IEEE P2030", "ieee", Some("IEEE P2030"));
        is(
            &reg,
            "IEEE 802.24 Smart Grid TAG",
            "ieee",
            Some("IEEE 802.24"),
        );
        is(&reg, "IETF ROLL WG", "ietf", Some("ROLL WG"));
        is(&reg, "ROLL WG", "ietf", Some("ROLL WG"));
        is(&reg, "6lo", "ietf", Some("6lo WG"));
        is(&reg, "IETF 6LoWPAN WG", "ietf", Some("6LoWPAN WG"));
        is(&reg, "IAB", "ietf", Some("IAB"));
        is(
            &reg,
            "ISO/IEC JTC 1/SC 25",
            "iso-iec-jtc1",
            Some("JTC 1/SC 25"),
        );
        is(&reg, "SC 25", "iso-iec-jtc1", Some("JTC 1/SC 25"));
        is(
            &reg,
            "ISO/IEC JTC 1/SC 25/WG 1",
            "iso-iec-jtc1",
            Some("JTC 1/SC 25/WG 1"),
        );
        is(&reg, "ISO/TC 205/WG 3", "iso", Some("TC 205/WG 3"));
        is(&reg, "IEC SMB SG3", "iec-smb-sg3", None);
        is(&reg, "IEC TC 57 WG 21", "iec", Some("TC 57/WG 21"));
        is(&reg, "TC 57", "iec", Some("TC 57"));
        is(&reg, "IEC CISPR/I", "iec", Some("CISPR/I"));
        is(&reg, "IEC", "iec", None);
        is(
            &reg,
            "CEN-CENELEC-ETSI Smart Grid Coordination Group",
            "cen-cenelec",
            Some("SG-CG"),
        );
        is(&reg, "CENELEC TC 205A", "cen-cenelec", Some("CLC/TC 205A"));
        is(&reg, "CLC/TC 205", "cen-cenelec", Some("CLC/TC 205"));
        is(&reg, "ETSI TC PLT", "etsi", Some("TC PLT"));
        is(&reg, "Broadband Forum", "broadband-forum", None);
        is(&reg, "NIST SGIP PAP 15", "nist-sgip", Some("PAP 15"));
        is(&reg, "SGIP H2G DEWG", "nist-sgip", Some("H2G DEWG"));
        is(&reg, "HomePlug Powerline Alliance", "homeplug", None);
        is(&reg, "Wi-SUN Alliance", "wi-sun", None);
        is(&reg, "University of Exampleshire", "academia", None);
        is(&reg, "TTA PG 606 (Smart Grid)", "tta", Some("PG 606"));
        is(&reg, "CCSA TC10 (Ubiquitous Network)", "ccsa", Some("TC10"));
    }

    #[test]
    fn unknown_names_resolve_to_nothing() {
        let reg = shipped();
        for t in [
            "HomeGrid Forum",
            "",
            "Dear colleagues",
            "SG3",
            "ITU-T",
            "WP1",
            "150",
        ] {
            assert_eq!(reg.resolve(t), None, "{t:?}");
        }
        // Token boundaries: SG150 is not SG15, 802.151 is not 802.15.
        assert_eq!(reg.resolve("SG150"), None);
        assert_ne!(
            r(&reg, "802.151").and_then(|x| x.1),
            Some("IEEE 802.15".into())
        );
    }

    #[test]
    fn most_specific_wins() {
        let reg = shipped();
        is(&reg, "ITU-T SG15", "itu-t-sg15", None);
        is(&reg, "IEC SMB SG3 and IEC", "iec-smb-sg3", None);
        is(&reg, "ETSI, for 3GPP TSG SA WG2", "3gpp", Some("SA2"));
        // Q25/2 written out (ITU-D) beats the ITU-T SG2 pattern Q{n}/2.
        is(&reg, "Q25/2", "itu-d", Some("Q25/2"));
        let all: Vec<String> = reg
            .resolve_all("ITU-T SG13, IEC SMB SG3, NIST SGIP PAP 15 and IEEE P1901.2")
            .into_iter()
            .map(|r| r.org)
            .collect();
        assert_eq!(all, ["itu-t-sg13", "iec-smb-sg3", "nist-sgip", "ieee"]);
        let all = reg.resolve_all("IEEE 802.15, IEEE 802.16, ETSI TC ERM, 3GPP TSG RAN");
        let orgs: Vec<&str> = all.iter().map(|r| r.org.as_str()).collect();
        assert_eq!(orgs, ["ieee", "etsi", "3gpp"]);
    }

    #[test]
    fn lookups_by_id_domain_and_address() {
        let reg = shipped();
        assert_eq!(reg.get("itu-t-sg15").unwrap().kind, Kind::ItuTGroup);
        assert!(reg.get("nope").is_none());
        let ids = |v: Vec<&Organization>| v.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(reg.by_domain("lists.ietf.org")), ["ietf"]);
        assert_eq!(ids(reg.by_domain("IEC.CH")), ["iec"]);
        assert!(ids(reg.by_domain("itu.int")).contains(&"itu-t-sg15".to_string()));
        assert!(reg.by_domain("example.com").is_empty());
        assert_eq!(ids(reg.by_address("TSBSG15@itu.int")), ["itu-t-sg15"]);
        assert_eq!(ids(reg.by_address("3GPPLiaison@etsi.org")), ["3gpp"]);
        assert_eq!(ids(reg.by_address("someone@etsi.org")), ["etsi"]);
        let (o, sub) = reg.find("IEEE 802.11").unwrap();
        assert_eq!(
            (o.id.as_str(), sub.as_deref()),
            ("ieee", Some("IEEE 802.11"))
        );
    }

    #[test]
    fn aliases_added_at_run_time() {
        let mut reg = shipped();
        assert_eq!(reg.resolve("HomeGrid Forum"), None);
        assert!(reg.add_alias("itu-t-sg15", "HomeGrid Forum").unwrap());
        is(&reg, "the HomeGrid Forum", "itu-t-sg15", None);
        assert!(!reg.add_alias("itu-t-sg15", "homegrid forum").unwrap());
        let e = reg.add_alias("ieee", "SG 15").unwrap_err();
        assert!(e.to_string().contains("itu-t-sg15"), "{e}");
        let e = reg.add_alias("ieee", "Q{n}/15").unwrap_err();
        assert!(e.to_string().contains("placeholder"), "{e}");
        assert!(matches!(
            reg.add_alias("nope", "x"),
            Err(Error::UnknownOrg(_))
        ));
        assert!(reg.add_alias("ieee", "--").is_err());
    }

    fn err(text: &str) -> String {
        Registry::from_toml(text, Path::new("orgs.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn validation_errors_name_the_file_and_entry() {
        let a = "[[org]]\nid = \"a\"\nname = \"Alpha\"\nkind = \"sdo\"\n";
        let e = err(&format!("{a}{a}"));
        assert!(
            e.contains("orgs.toml") && e.contains("#2") && e.contains("duplicate id"),
            "{e}"
        );
        let e = err(&format!(
            "{a}aliases = [\"A-B\"]\n[[org]]\nid = \"b\"\nname = \"Beta\"\nkind = \"forum\"\naliases = [\"a b\"]\n"
        ));
        assert!(
            e.contains("orgs.toml") && e.contains("(b)") && e.contains("also names a"),
            "{e}"
        );
        let e = err(&format!("{a}aliases = [\"X\", \"x\"]\n"));
        assert!(e.contains("listed twice"), "{e}");
        let e = err("[[org]]\nid = \"a\"\nname = \"A\"\nkind = \"bogus\"\n");
        assert!(e.contains("orgs.toml") && e.contains("bogus"), "{e}");
        let e = err("[[org]]\nid = \"A B\"\nname = \"A\"\nkind = \"sdo\"\n");
        assert!(e.contains("id must be"), "{e}");
        let e = err(&format!(
            "{a}subgroups = [{{ name = \"WG{{n}}\", aliases = [\"WG\"] }}]\n"
        ));
        assert!(e.contains("lacks a placeholder"), "{e}");
        let e = err(&format!("{a}subgroups = [\"Q{{z}}\"]\n"));
        assert!(e.contains("unknown placeholder"), "{e}");
        let e = err(&format!("{a}liaison_contacts = [\"nobody\"]\n"));
        assert!(e.contains("not an address"), "{e}");
        let e = err(&format!("{a}colour = \"red\"\n"));
        assert!(e.contains("colour"), "{e}");
        let e = err(&format!(
            "{a}subgroups = [\"TC {{n}}\"]\n[[org]]\nid = \"b\"\nname = \"B\"\nkind = \"sdo\"\nsubgroups = [\"TC{{n}}\"]\n"
        ));
        assert!(e.contains("(b)") && e.contains("duplicate alias"), "{e}");
    }

    #[test]
    fn every_required_id_is_shipped() {
        let reg = shipped();
        for id in REQUIRED_IDS {
            assert!(reg.get(id).is_some(), "{id}");
        }
        assert_eq!(reg.get("jca-sghn").unwrap().kind, Kind::Internal);
    }
}
