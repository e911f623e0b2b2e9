//! The posting policy: a chain of rules that turns a post into a value, never an error:
//! accept, hold (with every reason found), reject (with the reason told to the poster) or
//! discard. Modelled on GNU Mailman 3's chains: the loop rule first, then the moderation
//! rules; the first rule that decides ends the chain, except that hold reasons accumulate.

use serde::Serialize;

use super::members::Member;
use crate::config::{List, NonMemberAction, Posting};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "reasons", rename_all = "lowercase")]
pub enum Disposition {
    Accept,
    Hold(Vec<String>),
    Reject(String),
    Discard(String),
}

/// The facts about a post that the rules look at.
#[derive(Debug, Clone, Default)]
pub struct Post {
    /// Address of the author (From), lower-cased.
    pub sender: Option<String>,
    pub size: u64,
    /// Every MIME type in the message, lower-cased ("text/plain", ...).
    pub content_types: Vec<String>,
    /// Values of List-Id headers present.
    pub list_ids: Vec<String>,
    /// Values of X-Loop headers present.
    pub x_loop: Vec<String>,
}

/// RFC 2919 list identifier for a list: `<name.domain>`.
pub fn list_id(list: &List) -> String {
    format!("{}.{}", list.name, list.domain())
}

fn type_matches(pattern: &str, ty: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_suffix("/*") {
        Some(major) => ty.split('/').next() == Some(major),
        None => pattern == ty,
    }
}

/// Runs the chain for a post by `member` (None: not a member).
pub fn evaluate(list: &List, post: &Post, member: Option<&Member>) -> Disposition {
    // Loop: our own List-Id or X-Loop on an incoming post means it went round once.
    let own_id = list_id(list);
    let addr = list.address.to_ascii_lowercase();
    if post.list_ids.iter().any(|v| {
        v.to_ascii_lowercase()
            .contains(&own_id.to_ascii_lowercase())
    }) || post
        .x_loop
        .iter()
        .any(|v| v.to_ascii_lowercase().contains(&addr))
    {
        return Disposition::Discard(
            "mail loop: the post carries this list's own List-Id or X-Loop".into(),
        );
    }
    let mut hold = Vec::new();
    if post.size > list.max_message_bytes {
        hold.push(format!(
            "message size {} bytes exceeds the list's limit of {} bytes",
            post.size, list.max_message_bytes
        ));
    }
    for ty in &post.content_types {
        if list.mime_filter.iter().any(|p| type_matches(p, ty)) {
            hold.push(format!("content type {ty} is filtered on this list"));
        } else if !list.mime_pass.is_empty()
            && !ty.starts_with("multipart/")
            && !list.mime_pass.iter().any(|p| type_matches(p, ty))
        {
            hold.push(format!(
                "content type {ty} is not among the types this list passes"
            ));
        }
    }
    match (list.posting, member) {
        (Posting::Announce, Some(m)) if m.may_announce() => {}
        (Posting::Announce, _) => {
            hold.push("this list is announce-only: only conveners and owners post".into())
        }
        (Posting::Moderated, Some(m)) if m.is_moderator() => {}
        (Posting::Moderated, _) => hold.push("all posts to this list are moderated".into()),
        (Posting::Members | Posting::Open, Some(m)) if m.moderated => {
            hold.push("posts from this member are moderated".into())
        }
        (Posting::Members, None) => match list.non_member_action {
            NonMemberAction::Hold => hold.push(format!(
                "{} is not a member of the list",
                post.sender.as_deref().unwrap_or("the sender")
            )),
            NonMemberAction::Reject => {
                return Disposition::Reject(format!(
                    "only members may post to {}; {} is not a member",
                    list.address,
                    post.sender.as_deref().unwrap_or("the sender")
                ));
            }
            NonMemberAction::Discard => {
                return Disposition::Discard("post from a non-member".into());
            }
        },
        _ => {}
    }
    if hold.is_empty() {
        Disposition::Accept
    } else {
        Disposition::Hold(hold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(posting: &str, extra: &str) -> List {
        let text = format!(
            "[[list]]\nname = \"jca\"\naddress = \"jca@lists.example.org\"\nposting = \"{posting}\"\n{extra}"
        );
        crate::config::Config::from_toml(&text, std::path::Path::new("t"))
            .unwrap()
            .lists
            .remove(0)
    }

    fn member(role: &str, moderated: bool) -> Member {
        Member {
            list: "jca".into(),
            address: "a@example.org".into(),
            display_name: None,
            role: role.into(),
            delivery: "regular".into(),
            moderated,
            receive_own: false,
            created_at: 0,
        }
    }

    fn post() -> Post {
        Post {
            sender: Some("a@example.org".into()),
            size: 1000,
            content_types: vec!["text/plain".into()],
            ..Default::default()
        }
    }

    #[test]
    fn members_post_non_members_are_held_by_default() {
        let l = list("members", "");
        assert_eq!(
            evaluate(&l, &post(), Some(&member("member", false))),
            Disposition::Accept
        );
        assert!(
            matches!(evaluate(&l, &post(), None), Disposition::Hold(r) if r[0].contains("not a member"))
        );
        let l = list("members", "non_member_action = \"reject\"");
        assert!(matches!(
            evaluate(&l, &post(), None),
            Disposition::Reject(_)
        ));
        let l = list("members", "non_member_action = \"discard\"");
        assert!(matches!(
            evaluate(&l, &post(), None),
            Disposition::Discard(_)
        ));
        assert_eq!(
            evaluate(&list("open", ""), &post(), None),
            Disposition::Accept
        );
    }

    #[test]
    fn announce_moderated_and_moderated_members() {
        let l = list("announce", "");
        assert_eq!(
            evaluate(&l, &post(), Some(&member("convener", false))),
            Disposition::Accept
        );
        assert!(matches!(
            evaluate(&l, &post(), Some(&member("member", false))),
            Disposition::Hold(_)
        ));
        let l = list("moderated", "");
        assert!(matches!(
            evaluate(&l, &post(), Some(&member("member", false))),
            Disposition::Hold(_)
        ));
        assert_eq!(
            evaluate(&l, &post(), Some(&member("moderator", false))),
            Disposition::Accept
        );
        let l = list("members", "");
        assert!(
            matches!(evaluate(&l, &post(), Some(&member("member", true))), Disposition::Hold(r) if r[0].contains("moderated"))
        );
    }

    #[test]
    fn size_and_mime_reasons_accumulate() {
        let l = list(
            "members",
            "max_message_bytes = 500\nmime_filter = [\"application/x-msdownload\", \"audio/*\"]",
        );
        let mut p = post();
        p.content_types.push("audio/mpeg".into());
        p.content_types.push("application/x-msdownload".into());
        match evaluate(&l, &p, Some(&member("member", false))) {
            Disposition::Hold(r) => assert_eq!(r.len(), 3, "{r:?}"),
            other => panic!("{other:?}"),
        }
        let l = list("members", "mime_pass = [\"text/*\"]");
        p.content_types = vec![
            "multipart/mixed".into(),
            "text/plain".into(),
            "image/png".into(),
        ];
        match evaluate(&l, &p, Some(&member("member", false))) {
            Disposition::Hold(r) => assert!(r[0].contains("image/png"), "{r:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn own_list_id_or_x_loop_is_a_loop() {
        let l = list("open", "");
        let mut p = post();
        p.list_ids = vec!["JCA <jca.lists.example.org>".into()];
        assert!(matches!(evaluate(&l, &p, None), Disposition::Discard(r) if r.contains("loop")));
        let mut p = post();
        p.x_loop = vec!["jca@lists.example.org".into()];
        assert!(matches!(evaluate(&l, &p, None), Disposition::Discard(_)));
        let mut p = post();
        p.list_ids = vec!["<other.lists.example.org>".into()];
        assert_eq!(evaluate(&l, &p, None), Disposition::Accept);
    }
}
