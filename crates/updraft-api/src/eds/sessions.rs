//! Open notification streams and `eds`-mode sockets follow their user: when the token they were opened with
//! stops working or the user is gone they close (1008), and when the user's groups change they are re-scoped
//! (a stream's subjects, a socket's tags).
//!
//! Each stream or socket opened by a user of a backend this server hosts is remembered under (backend, user)
//! with the hash of its token. Whatever changes a user's standing (a token revoked, the user deleted or its
//! password changed, a group joined or left) calls [`Sessions::user_changed`], which looks the user up again
//! and applies the answer to each of its streams and sockets. On a shared store, the same changes made through
//! other nodes are heard of from the store (`Changes::standing_changes`). A periodic re-check does the same for
//! every followed user, as a safety net for changes made by other paths (token expiry).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::broadcast::error::RecvError;
use updraft_bus::Follows;
use updraft_core::ids::ObjectId;
use updraft_gateway::{Gateway, Permissions, SocketId, Tag};
use updraft_store::{Access, ChangeEvent, Collection, StandingChange, StoreError, Subject, USERGROUPS, USERS};
use updraft_ws::close_code;

use super::{group_subjects, user_subject};
use crate::ApiState;
use crate::auth::{Credentials, GatewayCaller};

/// How often every followed user is looked up again, whether or not anything said it changed.
const RECHECK: Duration = Duration::from_secs(60);
/// A socket's session is kept this long although its socket is neither pending nor open (see `Target::opening`).
const OPENING_GRACE: Duration = Duration::from_secs(10);

/// The user a stream was asked for by, and the SHA-256 of the token it used.
#[derive(Clone)]
pub(crate) struct Owner {
    user: String,
    token: [u8; 32],
}

impl Owner {
    pub(crate) fn new(user: &str, token: &str) -> Owner {
        Owner { user: user.to_owned(), token: Sha256::digest(token.as_bytes()).into() }
    }
}

#[derive(Clone)]
enum Target {
    /// An open stream, by its id in `Streams`.
    Stream(u64),
    /// A socket of `gateway`, pending or open.
    Socket { gateway: Arc<Gateway>, id: SocketId, issued: Instant },
}

impl Target {
    /// A socket issued so recently that it may be between redeeming its ticket and joining its hub, where
    /// neither finds it.
    fn opening(&self) -> bool {
        matches!(self, Target::Socket { issued, .. } if issued.elapsed() < OPENING_GRACE)
    }

    fn same(&self, other: &Target) -> bool {
        match (self, other) {
            (Target::Stream(a), Target::Stream(b)) => a == b,
            (Target::Socket { id: a, .. }, Target::Socket { id: b, .. }) => a == b,
            _ => false,
        }
    }
}

#[derive(Clone)]
struct Session {
    token: [u8; 32],
    target: Target,
}

/// Where a user stands now.
enum Standing {
    /// The token no longer works, or the user is gone.
    Revoked,
    /// Its groups as ACL subjects.
    Member(Vec<Subject>),
}

type UserKey = (String, String);

/// The streams and sockets that follow their users, by (backend, user id).
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
    rechecking: AtomicBool,
}

#[derive(Default)]
struct Inner {
    users: HashMap<UserKey, Vec<Session>>,
    /// Whose each followed token (by hash) is, so that revoking a token finds its user.
    tokens: HashMap<[u8; 32], UserKey>,
    /// Each followed user's groups when last looked at, so that a deleted group finds its members.
    groups: HashMap<UserKey, Vec<Subject>>,
}

impl Sessions {
    /// Follows an open stream of `owner`'s, and applies the user's standing now (it may have changed since its
    /// stream URL was issued).
    pub(crate) async fn follow_stream(&self, state: &ApiState, backend: &str, owner: &Owner, id: u64) {
        self.add(state, backend, &owner.user, Session { token: owner.token, target: Target::Stream(id) });
        self.user_changed(state, backend, &owner.user).await;
    }

    pub(crate) fn unfollow_stream(&self, backend: &str, owner: &Owner, id: u64) {
        self.forget(backend, &owner.user, &[Target::Stream(id)]);
    }

    /// Whom a socket issued to `caller` on `gateway` follows: its user, in `eds` mode, when this server hosts the
    /// backend (tokens of other backends are verified elsewhere, and expire there). Travels in the shared ticket,
    /// so that whichever node opens the socket follows it.
    pub async fn follows_of(
        state: &ApiState,
        gateway: &Gateway,
        caller: &GatewayCaller,
        creds: &Credentials,
    ) -> Option<Follows> {
        let (GatewayCaller::User(user), Credentials::Bearer(token)) = (caller, creds) else { return None };
        let backend = gateway.config().eds_backend_id.filter(|b| !b.is_empty())?;
        if !matches!(state.tenants.backend(&backend).await, Ok(Some(_))) {
            return None;
        }
        let token_sha256 = hex::encode(Owner::new(&user.id, token).token);
        Some(Follows { backend, user: user.id.clone(), token_sha256 })
    }

    /// Follows a socket of `gateway`, issued on this node (with its user's `groups` then) or opened here from
    /// another node's ticket.
    pub fn follow_socket(
        &self,
        state: &ApiState,
        gateway: &Arc<Gateway>,
        id: SocketId,
        follows: &Follows,
        groups: Option<Vec<Subject>>,
    ) {
        let mut token = [0u8; 32];
        if hex::decode_to_slice(&follows.token_sha256, &mut token).is_err() {
            return;
        }
        let target = Target::Socket { gateway: gateway.clone(), id, issued: Instant::now() };
        self.add(state, &follows.backend, &follows.user, Session { token, target });
        if let Some(groups) = groups {
            let key = (follows.backend.clone(), follows.user.clone());
            self.inner.lock().expect("sessions lock").groups.entry(key).or_insert(groups);
        }
    }

    /// Closes the streams and sockets opened with `token`, which was just revoked.
    pub async fn token_revoked(&self, state: &ApiState, token: &str) {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let user = self.inner.lock().expect("sessions lock").tokens.get(&hash).cloned();
        if let Some((backend, user)) = user {
            self.user_changed(state, &backend, &user).await;
        }
    }

    /// Looks `user` of `backend` up again and closes or re-scopes each of its streams and sockets. Call it after
    /// anything that may change the user's access: a token revoked, the user deleted or changed, a group joined
    /// or left. Costs one map lookup when the user has none open.
    pub async fn user_changed(&self, state: &ApiState, backend: &str, user: &str) {
        let key = (backend.to_owned(), user.to_owned());
        let Some(sessions) = self.inner.lock().expect("sessions lock").users.get(&key).cloned() else { return };
        let mut standings: Vec<([u8; 32], Standing)> = Vec::new();
        let mut gone = Vec::new();
        for session in sessions {
            if !standings.iter().any(|(token, _)| *token == session.token) {
                match standing(state, backend, user, &session.token).await {
                    Ok(standing) => standings.push((session.token, standing)),
                    Err(err) => {
                        // Decided again at the next change or re-check.
                        tracing::warn!(%err, "looking up a stream's or socket's user failed");
                        continue;
                    }
                }
            }
            let Some((_, standing)) = standings.iter().find(|(token, _)| *token == session.token) else { continue };
            if let Standing::Member(groups) = standing {
                self.inner.lock().expect("sessions lock").groups.insert(key.clone(), groups.clone());
            }
            let alive = match standing {
                // One still opening is closed at the next look.
                Standing::Revoked => !close(state, &session.target) && session.target.opening(),
                Standing::Member(groups) => rescope(state, &session.target, user, groups),
            };
            if !alive {
                gone.push(session.target);
            }
        }
        self.forget(backend, user, &gone);
    }

    fn add(&self, state: &ApiState, backend: &str, user: &str, session: Session) {
        let key = (backend.to_owned(), user.to_owned());
        let mut inner = self.inner.lock().expect("sessions lock");
        inner.tokens.insert(session.token, key.clone());
        inner.users.entry(key).or_default().push(session);
        drop(inner);
        if !self.rechecking.swap(true, Ordering::AcqRel) {
            spawn_recheck(state);
        }
    }

    fn forget(&self, backend: &str, user: &str, targets: &[Target]) {
        if targets.is_empty() {
            return;
        }
        let key = (backend.to_owned(), user.to_owned());
        let mut inner = self.inner.lock().expect("sessions lock");
        let Some(sessions) = inner.users.get_mut(&key) else { return };
        let mut dropped = Vec::new();
        sessions.retain(|s| {
            let keep = !targets.iter().any(|t| t.same(&s.target));
            if !keep {
                dropped.push(s.token);
            }
            keep
        });
        dropped.retain(|token| !sessions.iter().any(|s| s.token == *token));
        if sessions.is_empty() {
            inner.users.remove(&key);
            inner.groups.remove(&key);
        }
        for token in dropped {
            inner.tokens.remove(&token);
        }
    }

    /// Looks again at the followed users of `backend` who were in `group` when last looked at (or not looked at
    /// yet): the group was deleted, and with it their memberships.
    pub(crate) async fn group_deleted(&self, state: &ApiState, backend: &str, group: &str) {
        let subject = Subject::group(group);
        let users: Vec<String> = {
            let inner = self.inner.lock().expect("sessions lock");
            inner
                .users
                .keys()
                .filter(|key| key.0 == backend && inner.groups.get(*key).is_none_or(|groups| groups.contains(&subject)))
                .map(|(_, user)| user.clone())
                .collect()
        };
        for user in users {
            self.user_changed(state, backend, &user).await;
        }
    }

    fn following_anyone(&self) -> bool {
        !self.inner.lock().expect("sessions lock").users.is_empty()
    }

    /// Looks every followed user up again.
    async fn recheck(&self, state: &ApiState) {
        let users: Vec<UserKey> = self.inner.lock().expect("sessions lock").users.keys().cloned().collect();
        for (backend, user) in users {
            self.user_changed(state, &backend, &user).await;
        }
    }
}

/// Re-checks every followed user every [`RECHECK`], for as long as the application lives; and follows the change
/// log for deletions of users and groups made by any path (a cascading ref, a group deleted by its admin), so
/// that their sessions are looked at when it happens rather than at the next re-check.
fn spawn_recheck(state: &ApiState) {
    let watched = Arc::downgrade(&state.0);
    let changes = state.changes.clone();
    tokio::spawn(async move {
        let listening = {
            let watched = watched.clone();
            move || watched.upgrade().is_some_and(|app| app.sessions.following_anyone())
        };
        updraft_realtime::follow(changes, listening, |change| {
            let watched = watched.clone();
            async move {
                if change.event != ChangeEvent::Delete {
                    return;
                }
                let Some(app) = watched.upgrade() else { return };
                let state = ApiState(app);
                match change.object_type.as_str() {
                    USERS => state.sessions.user_changed(&state, &change.backend, &change.object_id).await,
                    USERGROUPS => state.sessions.group_deleted(&state, &change.backend, &change.object_id).await,
                    _ => {}
                }
            }
        })
        .await;
    });
    if let Some(mut standing) = state.changes.standing_changes() {
        // Revocations and memberships changed through other nodes of a cluster (this node's own come twice: the
        // second look finds nothing new).
        let app = Arc::downgrade(&state.0);
        tokio::spawn(async move {
            loop {
                let heard = standing.recv().await;
                let Some(app) = app.upgrade() else { return };
                let state = ApiState(app);
                match heard {
                    Ok(StandingChange::User { backend, user }) => {
                        state.sessions.user_changed(&state, &backend, &user).await;
                    }
                    Ok(StandingChange::Anyone) | Err(RecvError::Lagged(_)) => state.sessions.recheck(&state).await,
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }
    let app = Arc::downgrade(&state.0);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RECHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(app) = app.upgrade() else { return };
            let state = ApiState(app);
            state.sessions.recheck(&state).await;
        }
    });
}

/// Whether the token (by hash) still belongs to `user` of `backend`, the user still exists, and its groups.
async fn standing(state: &ApiState, backend: &str, user: &str, token: &[u8; 32]) -> Result<Standing, StoreError> {
    let grant = state.tenants.token(&hex::encode(token)).await?;
    if grant.is_none_or(|grant| grant.subject != user_subject(backend, user)) {
        return Ok(Standing::Revoked);
    }
    let Some(id) = ObjectId::parse(user) else { return Ok(Standing::Revoked) };
    let at = Collection { backend, object_type: USERS };
    if state.store.get(at, id, Access::Everything).await?.is_none() {
        return Ok(Standing::Revoked);
    }
    Ok(Standing::Member(group_subjects(state.groups.as_ref(), backend, user).await?))
}

/// Closes the stream or socket (or withdraws the socket's URI); false when it found neither.
fn close(state: &ApiState, target: &Target) -> bool {
    match target {
        Target::Stream(id) => {
            state.streams.hub.revoke(*id);
            true
        }
        Target::Socket { gateway, id, .. } => {
            gateway.close_socket(id, close_code::POLICY_VIOLATION, "access revoked")
                || state.gateways.cancel_ticket(gateway, id)
        }
    }
}

/// Gives the target the user's groups; answers whether it is still there to follow.
fn rescope(state: &ApiState, target: &Target, user: &str, groups: &[Subject]) -> bool {
    let mine: Vec<Subject> = std::iter::once(Subject::user(user)).chain(groups.iter().cloned()).collect();
    match target {
        Target::Stream(id) => {
            let subjects = std::iter::once(Subject::Everyone).chain(mine).collect();
            state.streams.hub.rescope(*id, subjects)
        }
        Target::Socket { gateway, id, .. } => {
            // The gateway's `EDS_PERMISSIONS.read` may have admitted the user only through a group it left.
            if !Permissions::allows(&gateway.config().eds_permissions.read, &mine) {
                close(state, target);
                return false;
            }
            let tags: Box<[Tag]> = mine.iter().map(|subject| Tag::from(subject.to_string().as_str())).collect();
            gateway.retag(id, tags.clone()) || state.gateways.retag_ticket(id, tags) || target.opening()
        }
    }
}
