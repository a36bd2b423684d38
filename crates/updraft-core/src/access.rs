//! Who may do what: access subjects, ACLs, and the one "may read" rule every path applies (lists in SQL, the
//! notification stream, sockets, webhooks, gateway permissions).
//!
//! Subjects are typed so that `"*"`, `"users.<id>"`, `"usergroups.<id>"` and the template placeholder `creator`
//! are spelled in one place: [`Subject`]'s `Display` and `FromStr` are the text the store keeps, the SQL binds
//! and the gateway tags sockets with.

use std::fmt;
use std::str::FromStr;

/// The object type of users; their usernames are unique per backend.
pub const USERS: &str = "users";

/// The object type of usergroups.
pub const USERGROUPS: &str = "usergroups";

/// The template placeholder's text.
const CREATOR: &str = "creator";

/// One entry of an ACL list, or one of the subjects a caller holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// `*`: every caller, anonymous ones included.
    Everyone,
    /// `users.<id>`.
    User(String),
    /// `usergroups.<id>`.
    Group(String),
    /// `creator`: in a template only, the user who creates the object (dropped for an anonymous creation).
    Creator,
}

impl Subject {
    pub fn user(id: impl Into<String>) -> Subject {
        Subject::User(id.into())
    }

    pub fn group(id: impl Into<String>) -> Subject {
        Subject::Group(id.into())
    }

    /// The subject as the wire APIs name it, `{"id", "objectType"}`: `users` and `usergroups` by id, everyone and
    /// the creator placeholder as `aclSubject`s `*` and `creator`.
    pub fn wire_id_and_type(&self) -> (&str, &'static str) {
        match self {
            Subject::Everyone => ("*", "aclSubject"),
            Subject::User(id) => (id, USERS),
            Subject::Group(id) => (id, USERGROUPS),
            Subject::Creator => (CREATOR, "aclSubject"),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Everyone => f.write_str("*"),
            Subject::User(id) => write!(f, "{USERS}.{id}"),
            Subject::Group(id) => write!(f, "{USERGROUPS}.{id}"),
            Subject::Creator => f.write_str(CREATOR),
        }
    }
}

/// Text that names no subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotASubject(pub String);

impl fmt::Display for NotASubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an access subject: {:?}", self.0)
    }
}

impl std::error::Error for NotASubject {}

impl FromStr for Subject {
    type Err = NotASubject;

    fn from_str(text: &str) -> Result<Subject, NotASubject> {
        let subject = match text.split_once('.') {
            _ if text == "*" => Subject::Everyone,
            _ if text == CREATOR => Subject::Creator,
            Some((USERS, id)) if !id.is_empty() => Subject::user(id),
            Some((USERGROUPS, id)) if !id.is_empty() => Subject::group(id),
            _ => return Err(NotASubject(text.to_owned())),
        };
        Ok(subject)
    }
}

/// The one rule: a caller holding `mine` is among `listed` when `listed` names everyone or one of `mine`.
pub fn among(listed: &[Subject], mine: &[Subject]) -> bool {
    listed.iter().any(|subject| *subject == Subject::Everyone || mine.contains(subject))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Read,
    Update,
    Delete,
    Admin,
}

impl Permission {
    pub const ALL: [Permission; 4] = [Permission::Read, Permission::Update, Permission::Delete, Permission::Admin];
}

/// Who may do what with one object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    pub read: Vec<Subject>,
    pub update: Vec<Subject>,
    pub delete: Vec<Subject>,
    pub admin: Vec<Subject>,
}

impl Acl {
    pub fn subjects(&self, permission: Permission) -> &[Subject] {
        match permission {
            Permission::Read => &self.read,
            Permission::Update => &self.update,
            Permission::Delete => &self.delete,
            Permission::Admin => &self.admin,
        }
    }

    pub fn subjects_mut(&mut self, permission: Permission) -> &mut Vec<Subject> {
        match permission {
            Permission::Read => &mut self.read,
            Permission::Update => &mut self.update,
            Permission::Delete => &mut self.delete,
            Permission::Admin => &mut self.admin,
        }
    }

    /// Whether a caller holding `mine` has `permission`; `admin` implies every other permission.
    pub fn allows(&self, permission: Permission, mine: &[Subject]) -> bool {
        among(self.subjects(permission), mine) || among(&self.admin, mine)
    }

    /// Whether everyone (`*`) may read, directly or as admin.
    pub fn is_public_read(&self) -> bool {
        self.read.iter().chain(&self.admin).any(|s| *s == Subject::Everyone)
    }

    /// Who may read the object: its `read` and `admin` lists, then those of the parent it extends, each subject
    /// once; just `*` when everyone may.
    pub fn readers(&self, inherited: Option<&Acl>) -> Vec<Subject> {
        let mut readers: Vec<Subject> = Vec::new();
        for acl in std::iter::once(self).chain(inherited) {
            for subject in acl.read.iter().chain(&acl.admin) {
                if *subject == Subject::Everyone {
                    return vec![Subject::Everyone];
                }
                if !readers.contains(subject) {
                    readers.push(subject.clone());
                }
            }
        }
        readers
    }

    /// Replaces `creator` with the creating user, or drops it for an anonymous creation.
    pub fn resolve_creator(mut self, creator: Option<&str>) -> Acl {
        for permission in Permission::ALL {
            let list = self.subjects_mut(permission);
            let had_creator = list.contains(&Subject::Creator);
            list.retain(|s| *s != Subject::Creator);
            if let (true, Some(user)) = (had_creator, creator) {
                let subject = Subject::user(user);
                if !list.contains(&subject) {
                    list.push(subject);
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_read_and_write_the_text_the_store_and_the_wire_use() {
        for text in ["*", "creator", "users.5376019e698b3c6ad500095a", "usergroups.12345"] {
            let subject: Subject = text.parse().unwrap();
            assert_eq!(subject.to_string(), text);
        }
        assert_eq!("users.u1".parse::<Subject>().unwrap(), Subject::user("u1"));
        assert_eq!("usergroups.g.1".parse::<Subject>().unwrap(), Subject::group("g.1"), "ids may hold dots");
        for bad in ["", "users.", "usergroups", "files.x", "**", "Users.u1"] {
            assert!(bad.parse::<Subject>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn among_is_everyone_or_a_shared_subject() {
        let mine = [Subject::Everyone, Subject::user("a"), Subject::group("g")];
        assert!(among(&[Subject::group("g")], &mine));
        assert!(among(&[Subject::Everyone], &[]), "everyone includes a caller with no subjects");
        assert!(!among(&[Subject::user("b"), Subject::group("h")], &mine));
        assert!(!among(&[], &mine));
    }

    #[test]
    fn admin_implies_every_permission() {
        let acl = Acl { admin: vec![Subject::user("a")], read: vec![Subject::user("b")], ..Acl::default() };
        assert!(acl.allows(Permission::Delete, &[Subject::user("a")]));
        assert!(acl.allows(Permission::Read, &[Subject::user("b")]));
        assert!(!acl.allows(Permission::Update, &[Subject::user("b")]));
    }

    #[test]
    fn readers_are_read_and_admin_of_the_object_and_its_parent() {
        let own = Acl { read: vec![Subject::user("a")], admin: vec![Subject::user("b")], ..Acl::default() };
        let parent = Acl { read: vec![Subject::user("a"), Subject::group("g")], ..Acl::default() };
        assert_eq!(own.readers(Some(&parent)), [Subject::user("a"), Subject::user("b"), Subject::group("g")]);
        let public = Acl { read: vec![Subject::Everyone], ..Acl::default() };
        assert_eq!(own.readers(Some(&public)), [Subject::Everyone]);
        let update_only = Acl { update: vec![Subject::user("a")], ..Acl::default() };
        assert!(update_only.readers(None).is_empty(), "update without read reads nothing");
    }

    #[test]
    fn the_creator_becomes_the_creating_user_or_nobody() {
        let template = Acl { read: vec![Subject::Everyone], admin: vec![Subject::Creator], ..Acl::default() };
        let resolved = template.clone().resolve_creator(Some("u1"));
        assert_eq!(resolved.admin, [Subject::user("u1")]);
        assert!(template.resolve_creator(None).admin.is_empty());
    }
}
