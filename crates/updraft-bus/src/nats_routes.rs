//! The subjects a gateway's publications take over NATS, by receivers, so that a node hears only what its sockets
//! want (docs/scale-out.md). A publication is written once, to `updraft.mwsj.<gateway>.<route>`, and the stream
//! republishes it on `updraft.mws.<gateway>.<route>` ([`crate::nats_journal`]); its route is:
//! - `all` for a broadcast (`*`),
//! - `t.<hash of the tag>` for a message to exactly one tag and no socket ids (tags may hold any character, so
//!   the subject token is the first 8 bytes of the tag's SHA-256, in hex; a collision costs a node a message its
//!   sockets then filter out, never a loss),
//! - `m` for anything else (several tags, socket ids): every node that holds a socket of the gateway hears it.
//!
//! A node subscribes to `all`, `m` and the tag routes of its sockets' tags, or to the whole gateway (`>`) once its
//! sockets there have more than [`MAX_TAG_ROUTES`] tags between them.

use sha2::Digest;

use crate::Publication;

/// Subjects publications are written to; the stream republishes them under [`HEARD`].
pub(crate) const WRITTEN: &str = "updraft.mwsj.";
/// Subjects nodes subscribe to: `updraft.mws.<gateway id>.<route>` (ids are `[A-Za-z0-9_-]`, valid tokens).
pub(crate) const HEARD: &str = "updraft.mws.";
/// Tag routes a node subscribes to in one gateway at most; beyond, it hears the whole gateway. Each subscription
/// is a channel in the client and an entry in the server, so per-socket tags (an `eds` gateway's `users.<id>`)
/// must not cost one subscription a socket.
pub(crate) const MAX_TAG_ROUTES: usize = 32;

/// Which of a gateway's subjects a publication takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Route {
    Everyone,
    /// The hash of its one tag, in hex.
    Tag(String),
    /// Several tags, socket ids, or both.
    Mixed,
}

impl Route {
    pub(crate) fn of(publication: &Publication) -> Route {
        match (publication.everyone, publication.sockets.as_slice(), publication.tags.as_slice()) {
            (true, _, _) => Route::Everyone,
            (false, [], [tag]) => Route::tag(tag),
            _ => Route::Mixed,
        }
    }

    pub(crate) fn tag(tag: &str) -> Route {
        let digest = sha2::Sha256::digest(tag.as_bytes());
        Route::Tag(digest[..8].iter().map(|byte| format!("{byte:02x}")).collect())
    }

    fn token(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Route::Everyone => "all".into(),
            Route::Tag(hash) => format!("t.{hash}").into(),
            Route::Mixed => "m".into(),
        }
    }

    /// The routes a node holding sockets with the tag routes `tags` hears: every message that may be for one of
    /// them.
    pub(crate) fn wanted(tags: &[Route]) -> impl Iterator<Item = Route> + '_ {
        [Route::Everyone, Route::Mixed].into_iter().chain(tags.iter().cloned())
    }
}

/// The subject `publication` is written to.
pub(crate) fn written(publication: &Publication) -> String {
    format!("{WRITTEN}{}.{}", publication.gateway, Route::of(publication).token())
}

/// Every subject of `gateway` publications are written to (what a socket resuming there may have missed).
pub(crate) fn written_in(gateway: &str) -> String {
    format!("{WRITTEN}{gateway}.>")
}

/// The subject a node subscribes to for `route` of `gateway`, or (`None`) for all of the gateway.
pub(crate) fn heard(gateway: &str, route: Option<&Route>) -> String {
    match route {
        Some(route) => format!("{HEARD}{gateway}.{}", route.token()),
        None => format!("{HEARD}{gateway}.>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(everyone: bool, sockets: &[&str], tags: &[&str]) -> Publication {
        Publication {
            gateway: "g-1".into(),
            everyone,
            sockets: sockets.iter().map(|s| (*s).to_owned()).collect(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..Publication::default()
        }
    }

    #[test]
    fn a_publication_takes_the_narrowest_subject_its_receivers_allow() {
        assert_eq!(written(&to(true, &[], &["x"])), "updraft.mwsj.g-1.all");
        let one_tag = written(&to(false, &[], &["users.a b*>"]));
        assert!(one_tag.starts_with("updraft.mwsj.g-1.t.") && one_tag.len() == "updraft.mwsj.g-1.t.".len() + 16);
        assert_eq!(one_tag.split('.').count(), 5, "a tag's dots and wildcards never reach the subject");
        assert_eq!(written(&to(false, &[], &["x", "y"])), "updraft.mwsj.g-1.m");
        assert_eq!(written(&to(false, &["s"], &["x"])), "updraft.mwsj.g-1.m");
        assert_eq!(written(&to(false, &["s"], &[])), "updraft.mwsj.g-1.m");
        assert_eq!(written(&to(false, &[], &[])), "updraft.mwsj.g-1.m");
    }

    #[test]
    fn a_node_with_a_tag_hears_each_route_a_message_to_it_can_take() {
        let wanted: Vec<String> =
            Route::wanted(&[Route::tag("users.a")]).map(|route| heard("g-1", Some(&route))).collect();
        for publication in [to(true, &[], &[]), to(false, &[], &["users.a"]), to(false, &["s"], &["users.a"])] {
            let subject = written(&publication).replacen(WRITTEN, HEARD, 1);
            assert!(wanted.contains(&subject), "{subject} is not among {wanted:?}");
        }
        let other = written(&to(false, &[], &["users.b"])).replacen(WRITTEN, HEARD, 1);
        assert!(!wanted.contains(&other));
        assert_eq!(heard("g-1", None), "updraft.mws.g-1.>");
        assert_eq!(written_in("g-1"), "updraft.mwsj.g-1.>");
    }
}
