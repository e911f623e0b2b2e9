//! Threading: which messages form one conversation, and the reply tree inside it.
//!
//! The tree follows the JWZ algorithm (<https://www.jwz.org/doc/threading.html>): one
//! container per Message-ID, References (then In-Reply-To) linked parent to child without
//! creating loops, a message's parent being the last id it references, "ghost" containers
//! for referenced but unseen messages, and ghosts pruned or promoted as in JWZ step 4.
//!
//! Two changes make the result independent of arrival order, which JWZ alone is not:
//! - **Membership** is the connected component of the reference graph (every
//!   References/In-Reply-To edge counts, including those JWZ skips because a container
//!   already has a parent), so a late message that references two threads merges them.
//! - **Subject grouping** is used only for a message with no References and no
//!   In-Reply-To whose subject carries a reply marker; it links to the single newest
//!   message (by date) of the same list with the same base subject within the window
//!   before it. Two unrelated "Agenda" threads therefore never merge: a bare "Agenda"
//!   never links by subject, and a "Re: Agenda" links to one thread only.
//!
//! Inputs are processed in a canonical order (date, Message-ID, content hash), so the same
//! set of messages gives the same threads and the same trees whatever order they came in.
//! The whole computation is a pure function of its input; `archive::store` feeds it from
//! the database and writes the result back.

use std::collections::HashMap;

/// What threading needs to know about one message.
#[derive(Debug, Clone)]
pub struct Input {
    /// Row id of the message; the thread id is the smallest row id in the thread.
    pub key: i64,
    pub hash: [u8; 32],
    pub message_id: String,
    pub references: Vec<String>,
    pub in_reply_to: Vec<String>,
    pub date: Option<i64>,
    /// Subject grouping happens only within one group (the list).
    pub group: String,
    pub base_subject: String,
    pub reply_subject: bool,
}

/// Where one message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub key: i64,
    pub thread_id: i64,
    /// Message-ID of the parent container (a message or a ghost), if any.
    pub parent: Option<String>,
}

/// A kept ghost: a Message-ID referenced but not archived, holding branches together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ghost {
    pub thread_id: i64,
    pub message_id: String,
    pub parent: Option<String>,
}

#[derive(Debug, Default)]
pub struct Threads {
    pub placements: Vec<Placement>,
    pub ghosts: Vec<Ghost>,
}

struct Container {
    mid: String,
    /// Index into the input slice, when a message has this container.
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Forest {
    c: Vec<Container>,
    by_id: HashMap<String, usize>,
}

impl Forest {
    fn get(&mut self, mid: &str) -> usize {
        if let Some(&i) = self.by_id.get(mid) {
            return i;
        }
        let i = self.new_container(mid.to_string(), None);
        self.by_id.insert(mid.to_string(), i);
        i
    }

    fn new_container(&mut self, mid: String, msg: Option<usize>) -> usize {
        self.c.push(Container {
            mid,
            msg,
            parent: None,
            children: Vec::new(),
        });
        self.c.len() - 1
    }

    /// Is `a` an ancestor of `b` (or `b` itself)?
    fn reaches(&self, a: usize, b: usize) -> bool {
        let mut cur = Some(b);
        while let Some(x) = cur {
            if x == a {
                return true;
            }
            cur = self.c[x].parent;
        }
        false
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.c[child].parent.take() {
            self.c[p].children.retain(|&x| x != child);
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.unlink(child);
        self.c[child].parent = Some(parent);
        self.c[parent].children.push(child);
    }

    fn root(&self, mut x: usize) -> usize {
        while let Some(p) = self.c[x].parent {
            x = p;
        }
        x
    }
}

/// Union-find over container indices.
struct Dsu(Vec<usize>);
impl Dsu {
    fn find(&mut self, x: usize) -> usize {
        let mut r = x;
        while self.0[r] != r {
            r = self.0[r];
        }
        let mut x = x;
        while self.0[x] != r {
            let n = self.0[x];
            self.0[x] = r;
            x = n;
        }
        r
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.0[a.max(b)] = a.min(b);
        }
    }
}

/// The ids a message references, oldest first: References, then an In-Reply-To id that
/// References does not already end with.
fn reference_chain(m: &Input) -> Vec<&str> {
    let mut chain: Vec<&str> = m.references.iter().map(String::as_str).collect();
    if let Some(irt) = m.in_reply_to.first()
        && chain.last() != Some(&irt.as_str())
    {
        chain.retain(|r| r != irt);
        chain.push(irt);
    }
    chain
}

/// Computes threads for a set of messages. `window_secs` bounds subject grouping.
pub fn compute(inputs: &[Input], window_secs: i64) -> Threads {
    // Canonical order: undated messages last.
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    let sort_key = |i: &usize| {
        let m = &inputs[*i];
        (m.date.unwrap_or(i64::MAX), m.message_id.as_str(), m.hash)
    };
    order.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));

    let mut f = Forest {
        c: Vec::with_capacity(inputs.len() * 2),
        by_id: HashMap::with_capacity(inputs.len() * 2),
    };
    // Containers for every message first, so "has a message" is known before linking.
    let mut container_of = vec![0usize; inputs.len()];
    let mut duplicates = Vec::new();
    for &i in &order {
        let c = f.get(&inputs[i].message_id);
        if f.c[c].msg.is_none() {
            f.c[c].msg = Some(i);
            container_of[i] = c;
        } else {
            // Same Message-ID, different bytes: its own container, a child of the first.
            let d = f.new_container(inputs[i].message_id.clone(), Some(i));
            container_of[i] = d;
            duplicates.push((c, d));
        }
    }

    // JWZ step 1, plus every reference edge recorded for membership.
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for &i in &order {
        let m = &inputs[i];
        let this = container_of[i];
        let chain = reference_chain(m);
        let ids: Vec<usize> = chain.iter().map(|r| f.get(r)).collect();
        for w in ids.windows(2) {
            let (p, c) = (w[0], w[1]);
            edges.push((p, c));
            if p != c && f.c[c].parent.is_none() && !f.reaches(c, p) {
                f.link(p, c);
            }
        }
        if let Some(&last) = ids.last() {
            edges.push((last, this));
            if last != this && !f.reaches(this, last) {
                f.link(last, this);
            }
        }
    }
    for &(orig, dup) in &duplicates {
        edges.push((orig, dup));
        if f.c[dup].parent.is_none() && !f.reaches(dup, orig) {
            f.link(orig, dup);
        }
    }

    // JWZ step 4: prune ghosts. Children of a ghost move up to the ghost's parent; a
    // root ghost with a single child gives way to it; a root ghost with several stays.
    let n = f.c.len();
    for x in 0..n {
        if f.c[x].msg.is_some() {
            continue;
        }
        let kids = f.c[x].children.clone();
        match (f.c[x].parent, kids.len()) {
            (_, 0) => f.unlink(x),
            (Some(p), _) => {
                for k in kids {
                    f.link(p, k);
                }
                f.unlink(x);
            }
            (None, 1) => f.unlink(kids[0]),
            (None, _) => {}
        }
    }

    // Subject grouping (last resort) on the pruned forest.
    let mut by_subject: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for &i in &order {
        let m = &inputs[i];
        if m.date.is_some() && !m.base_subject.is_empty() {
            by_subject
                .entry((m.group.as_str(), m.base_subject.as_str()))
                .or_default()
                .push(i);
        }
    }
    for list in by_subject.values() {
        // `list` is in canonical order, hence by date.
        for (pos, &i) in list.iter().enumerate() {
            let m = &inputs[i];
            if !(m.reply_subject && m.references.is_empty() && m.in_reply_to.is_empty()) {
                continue;
            }
            let Some(&prev) = pos.checked_sub(1).and_then(|p| list.get(p)) else {
                continue;
            };
            let (d, pd) = (
                m.date.unwrap_or_default(),
                inputs[prev].date.unwrap_or_default(),
            );
            if d - pd > window_secs {
                continue;
            }
            let (this, other) = (container_of[i], container_of[prev]);
            edges.push((other, this));
            let target = f.root(other);
            if target != this && f.c[this].parent.is_none() && !f.reaches(this, target) {
                f.link(target, this);
            }
        }
    }

    // Membership: components of all edges.
    let mut dsu = Dsu((0..f.c.len()).collect());
    for (a, b) in edges {
        dsu.union(a, b);
    }
    let mut thread_of_root: HashMap<usize, i64> = HashMap::new();
    for (i, m) in inputs.iter().enumerate() {
        let r = dsu.find(container_of[i]);
        let e = thread_of_root.entry(r).or_insert(m.key);
        *e = (*e).min(m.key);
    }

    let parent_mid = |f: &Forest, x: usize| f.c[x].parent.map(|p| f.c[p].mid.clone());
    let mut out = Threads::default();
    for (i, m) in inputs.iter().enumerate() {
        let x = container_of[i];
        out.placements.push(Placement {
            key: m.key,
            thread_id: thread_of_root[&dsu.find(x)],
            parent: parent_mid(&f, x),
        });
    }
    for x in 0..f.c.len() {
        let c = &f.c[x];
        if c.msg.is_none()
            && !c.children.is_empty()
            && let Some(&tid) = thread_of_root.get(&dsu.find(x))
        {
            out.ghosts.push(Ghost {
                thread_id: tid,
                message_id: c.mid.clone(),
                parent: parent_mid(&f, x),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(key: i64, mid: &str, refs: &[&str], date: i64, subject: &str) -> Input {
        let (base, reply) = crate::parse::base_subject(subject);
        Input {
            key,
            hash: crate::parse::content_hash(format!("{key}{mid}").as_bytes()),
            message_id: mid.into(),
            references: refs.iter().map(|s| s.to_string()).collect(),
            in_reply_to: Vec::new(),
            date: Some(date),
            group: "l".into(),
            base_subject: base,
            reply_subject: reply,
        }
    }

    fn thread_of(t: &Threads, key: i64) -> i64 {
        t.placements
            .iter()
            .find(|p| p.key == key)
            .unwrap()
            .thread_id
    }
    fn parent_of(t: &Threads, key: i64) -> Option<&str> {
        t.placements
            .iter()
            .find(|p| p.key == key)
            .unwrap()
            .parent
            .as_deref()
    }

    const DAY: i64 = 86400;
    const W: i64 = 60 * DAY;

    #[test]
    fn references_build_a_tree() {
        let t = compute(
            &[
                msg(1, "a", &[], 0, "Topic"),
                msg(2, "b", &["a"], 10, "Re: Topic"),
                msg(3, "c", &["a", "b"], 20, "Re: Topic"),
                msg(4, "d", &["a"], 30, "Re: Topic"),
            ],
            W,
        );
        assert!(t.placements.iter().all(|p| p.thread_id == 1));
        assert_eq!(parent_of(&t, 1), None);
        assert_eq!(parent_of(&t, 2), Some("a"));
        assert_eq!(parent_of(&t, 3), Some("b"));
        assert_eq!(parent_of(&t, 4), Some("a"));
    }

    #[test]
    fn ghost_root_keeps_siblings_together() {
        let t = compute(
            &[
                msg(5, "b", &["gone"], 10, "Re: x"),
                msg(6, "c", &["gone"], 20, "Re: x"),
            ],
            W,
        );
        assert_eq!(thread_of(&t, 5), thread_of(&t, 6));
        assert_eq!(parent_of(&t, 5), Some("gone"));
        assert_eq!(t.ghosts.len(), 1);
        assert_eq!(t.ghosts[0].message_id, "gone");
    }

    #[test]
    fn single_child_ghost_is_promoted_away() {
        let t = compute(&[msg(5, "b", &["gone1", "gone2"], 10, "Re: x")], W);
        assert_eq!(parent_of(&t, 5), None);
        assert!(t.ghosts.is_empty());
    }

    #[test]
    fn reference_cycles_are_broken() {
        let t = compute(
            &[msg(1, "a", &["b"], 0, "x"), msg(2, "b", &["a"], 10, "x")],
            W,
        );
        assert_eq!(thread_of(&t, 1), thread_of(&t, 2));
        // Exactly one of them is the root.
        let roots = [parent_of(&t, 1), parent_of(&t, 2)]
            .iter()
            .filter(|p| p.is_none())
            .count();
        assert_eq!(roots, 1);
    }

    #[test]
    fn unrelated_agenda_threads_stay_apart() {
        let t = compute(
            &[
                msg(1, "a1", &[], 0, "[jca] Agenda"),
                msg(2, "r1", &[], DAY, "Re: [jca] Agenda"),
                msg(3, "a2", &[], 10 * DAY, "Agenda"),
                msg(4, "r2", &[], 11 * DAY, "RE: Agenda"),
                msg(5, "a3", &[], 200 * DAY, "Agenda"),
                msg(6, "r3", &[], 300 * DAY, "Re: Agenda"),
            ],
            W,
        );
        assert_eq!(thread_of(&t, 2), thread_of(&t, 1));
        assert_eq!(thread_of(&t, 4), thread_of(&t, 3));
        assert_ne!(thread_of(&t, 1), thread_of(&t, 3));
        assert_ne!(thread_of(&t, 5), thread_of(&t, 3));
        // Outside the window: a thread of its own.
        assert_ne!(thread_of(&t, 6), thread_of(&t, 5));
        assert_eq!(parent_of(&t, 2), Some("a1"));
    }

    #[test]
    fn subject_grouping_is_scoped_to_the_list() {
        let mut b = msg(2, "r", &[], DAY, "Re: Agenda");
        b.group = "other".into();
        let t = compute(&[msg(1, "a", &[], 0, "Agenda"), b], W);
        assert_ne!(thread_of(&t, 1), thread_of(&t, 2));
    }

    #[test]
    fn late_message_merges_two_threads() {
        let early = [
            msg(1, "x1", &["root"], 10, "Re: plan"),
            msg(2, "y1", &["mid"], 20, "Re: plan"),
        ];
        let t = compute(&early, W);
        assert_ne!(thread_of(&t, 1), thread_of(&t, 2));
        let mut all = early.to_vec();
        all.push(msg(3, "mid", &["root"], 15, "Re: plan"));
        let t = compute(&all, W);
        assert_eq!(thread_of(&t, 1), thread_of(&t, 2));
        assert_eq!(thread_of(&t, 3), 1);
    }

    #[test]
    fn duplicate_message_ids_share_a_thread() {
        let t = compute(&[msg(1, "a", &[], 0, "x"), msg(2, "a", &[], 5, "x")], W);
        assert_eq!(thread_of(&t, 1), thread_of(&t, 2));
        assert_eq!(parent_of(&t, 2), Some("a"));
    }
}
