//! Gateways (tenants of the WebSocket service) and the single-use tickets that open their sockets.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use updraft_core::access::{self, Subject};

use crate::hub::{Hub, N_SHARDS};
use crate::pending::{Limits, Pending, Refusal, Requester};
use crate::socket::{QueueLimits, Socket, SocketId, Tag};

/// Who may get socket URIs and send messages (the original `ACCESS_CONTROL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessControl {
    /// Anyone may get a socket and send.
    None,
    /// EDS users, as allowed by `Permissions`; the security token always.
    Eds,
    /// Only the security token: an app's server hands out sockets.
    Custom,
}

/// The original `EDS_PERMISSIONS`: subjects (`"*"` or `"usergroups.<id>"`) allowed to read and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub read: Vec<String>,
    pub write: Vec<String>,
}

impl Default for Permissions {
    fn default() -> Permissions {
        let everyone = || vec![Subject::Everyone.to_string()];
        Permissions { read: everyone(), write: everyone() }
    }
}

impl Permissions {
    /// Whether a user holding `mine` (itself and its groups) is among `listed` (one list of this struct): by
    /// `"*"`, by one of its groups (`usergroups.<id>`), or by `users.<id>` (an addition to the original). Entries
    /// that name no subject are kept as given (the original took any text) and admit nobody.
    pub fn allows(listed: &[String], mine: &[Subject]) -> bool {
        listed.iter().filter_map(|text| text.parse::<Subject>().ok()).any(|s| access::among(&[s], mine))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub name: String,
    pub access: AccessControl,
    /// The admin bearer token (`SECURITY_TOKEN`); without one, admin calls are refused.
    pub security_token: Option<String>,
    pub eds_backend_id: Option<String>,
    pub eds_permissions: Permissions,
    pub eds_uri: String,
}

pub struct Gateway {
    pub id: String,
    pub hub: Hub,
    config: RwLock<GatewayConfig>,
    /// Shared by every gateway of the server: see [`Gateways::on_membership`].
    membership: Arc<OnceLock<MembershipHook>>,
}

/// Told when a socket opens on this node or leaves it (the cluster's socket registry listens).
pub type MembershipHook = Arc<dyn Fn(&Gateway, &Socket, Membership) + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Opened,
    Closed,
    /// Its tags changed.
    Retagged,
}

impl Gateway {
    pub fn config(&self) -> GatewayConfig {
        self.config.read().expect("config lock").clone()
    }

    pub fn set_config(&self, config: GatewayConfig) {
        *self.config.write().expect("config lock") = config;
    }

    /// Takes socket `id` out of the hub and asks its connection to close with `code`; false when this node does not
    /// hold it.
    pub fn close_socket(&self, id: &SocketId, code: u16, reason: &'static str) -> bool {
        let Some(socket) = self.hub.get(id) else { return false };
        self.hub.remove(&socket);
        socket.request_close(code, reason);
        true
    }

    /// Says that `socket` joined this gateway's hub on this node, or left it.
    pub fn announce(&self, socket: &Socket, change: Membership) {
        if let Some(hook) = self.membership.get() {
            hook(self, socket, change);
        }
    }

    /// Gives an open socket new tags (its user's groups changed) and tells the cluster; false when it is not
    /// here.
    pub fn retag(&self, id: &SocketId, tags: Box<[Tag]>) -> bool {
        if !self.hub.retag(id, tags) {
            return false;
        }
        if let Some(socket) = self.hub.get(id) {
            self.announce(&socket, Membership::Retagged);
        }
        true
    }
}

/// A socket that may be opened once.
pub struct Ticket {
    pub gateway: Arc<Gateway>,
    pub tags: Box<[Tag]>,
}

/// A gateway as a ticket quota's tenant: by identity (the ticket holds it, so the address stays its own).
#[derive(Clone)]
struct TicketTenant(Arc<Gateway>);

impl PartialEq for TicketTenant {
    fn eq(&self, other: &TicketTenant) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TicketTenant {}

impl Hash for TicketTenant {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.0).hash(state);
    }
}

/// Every gateway of this server and the tickets not yet used.
pub struct Gateways {
    gateways: RwLock<HashMap<String, Arc<Gateway>>>,
    /// Bounded in total (the memory bound), per gateway and per client address: see `pending::Limits`.
    tickets: Pending<TicketTenant, Box<[Tag]>>,
    limits: QueueLimits,
    membership: Arc<OnceLock<MembershipHook>>,
}

pub const DEFAULT_GATEWAY: &str = "default";

impl Gateways {
    /// `ticket_lifetime` is how long a handed-out socket URI stays usable (5 minutes originally); at most
    /// `max_tickets` are pending on all gateways together, and a share of them per gateway and per client.
    pub fn new(limits: QueueLimits, max_tickets: usize, ticket_lifetime: Duration) -> Gateways {
        let tickets = Pending::new(Limits::shares_of(max_tickets), ticket_lifetime);
        Gateways { gateways: RwLock::default(), tickets, limits, membership: Arc::default() }
    }

    /// Creates or reconfigures a gateway.
    pub fn upsert(&self, id: &str, config: GatewayConfig) -> Arc<Gateway> {
        let mut gateways = self.gateways.write().expect("gateways lock");
        if let Some(existing) = gateways.get(id) {
            existing.set_config(config);
            return existing.clone();
        }
        let gateway = Arc::new(Gateway {
            id: id.to_owned(),
            hub: Hub::new(self.limits),
            config: RwLock::new(config),
            membership: self.membership.clone(),
        });
        gateways.insert(id.to_owned(), gateway.clone());
        gateway
    }

    /// Sets, once, who is told of sockets opening and closing on every gateway, those made later included.
    pub fn on_membership(&self, hook: MembershipHook) {
        let _ = self.membership.set(hook);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Gateway>> {
        self.gateways.read().expect("gateways lock").get(id).cloned()
    }

    pub fn list(&self) -> Vec<Arc<Gateway>> {
        let mut res: Vec<_> = self.gateways.read().expect("gateways lock").values().cloned().collect();
        res.sort_by(|a, b| a.id.cmp(&b.id));
        res
    }

    /// Removes a gateway, its tickets, and closes its sockets.
    pub fn remove(&self, id: &str) -> Option<Arc<Gateway>> {
        let gateway = self.gateways.write().expect("gateways lock").remove(id)?;
        self.tickets.remove_tenant(&TicketTenant(gateway.clone()));
        gateway.hub.close_all(updraft_ws::close_code::GOING_AWAY, "gateway deleted");
        Some(gateway)
    }

    /// Issues a single-use ticket, or says which quota refuses it.
    pub fn issue_ticket(
        &self,
        gateway: &Arc<Gateway>,
        tags: Box<[Tag]>,
        requester: Requester,
    ) -> Result<(SocketId, SystemTime), Refusal> {
        let (id, _) = self.tickets.issue(TicketTenant(gateway.clone()), requester, tags)?;
        Ok((id, SystemTime::now() + self.tickets.lifetime()))
    }

    /// Takes a ticket for use; an expired one is gone as if it never existed.
    pub fn redeem(&self, id: &SocketId) -> Option<Ticket> {
        let (TicketTenant(gateway), tags) = self.tickets.take(id)?;
        Some(Ticket { gateway, tags })
    }

    /// Withdraws an unused ticket of `gateway`.
    pub fn cancel_ticket(&self, gateway: &Arc<Gateway>, id: &SocketId) -> bool {
        self.tickets.take_if(id, |t| Arc::ptr_eq(&t.0, gateway)).is_some()
    }

    /// Whether `id` is an unused, unexpired ticket.
    pub fn is_pending(&self, id: &SocketId) -> bool {
        self.tickets.contains(id)
    }

    /// Changes the tags a pending ticket's socket will open with; false when there is no such ticket.
    pub fn retag_ticket(&self, id: &SocketId, tags: Box<[Tag]>) -> bool {
        self.tickets.update(id, |t| *t = tags)
    }

    /// Frees expired tickets (issuing does too); run periodically.
    pub fn sweep_tickets(&self) -> usize {
        self.tickets.sweep()
    }

    /// Pings every socket once per `interval`, one hub shard at a time; returns when `gateways`
    /// is dropped. One task for all sockets instead of a timer per socket keeps sockets small.
    pub async fn run_heartbeat(gateways: std::sync::Weak<Gateways>, interval: Duration) {
        let mut tick = tokio::time::interval(interval / N_SHARDS as u32);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        for shard in (0..N_SHARDS).cycle() {
            tick.tick().await;
            let Some(gateways) = gateways.upgrade() else { return };
            for gateway in gateways.list() {
                gateway.hub.heartbeat(shard);
            }
        }
    }

    pub fn close_all(&self, code: u16, reason: &'static str) {
        for gateway in self.list() {
            gateway.hub.close_all(code, reason);
        }
    }

    pub fn connected(&self) -> usize {
        self.list().iter().map(|g| g.hub.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GatewayConfig {
        GatewayConfig {
            name: "t".into(),
            access: AccessControl::None,
            security_token: None,
            eds_backend_id: None,
            eds_permissions: Permissions::default(),
            eds_uri: String::new(),
        }
    }

    const ANYONE: Requester = Requester::Public(None);

    #[test]
    fn tickets_are_single_use_and_bounded() {
        let gateways = Gateways::new(QueueLimits { max_bytes: 1024, max_frames: 4 }, 2, Duration::from_secs(300));
        let gw = gateways.upsert("g", config());
        let (a, _) = gateways.issue_ticket(&gw, Box::new([]), ANYONE).unwrap();
        let (_b, _) = gateways.issue_ticket(&gw, Box::new([]), ANYONE).unwrap();
        assert!(gateways.issue_ticket(&gw, Box::new([]), ANYONE).is_err());
        assert!(gateways.redeem(&a).is_some());
        assert!(gateways.redeem(&a).is_none());
        assert!(gateways.issue_ticket(&gw, Box::new([]), ANYONE).is_ok());
    }

    #[test]
    fn expired_tickets_cannot_be_redeemed() {
        let gateways = Gateways::new(QueueLimits { max_bytes: 1024, max_frames: 4 }, 10, Duration::ZERO);
        let gw = gateways.upsert("g", config());
        let (a, _) = gateways.issue_ticket(&gw, Box::new([]), ANYONE).unwrap();
        assert!(gateways.redeem(&a).is_none());
    }

    #[test]
    fn finding_11_a_full_gateway_does_not_refuse_another() {
        let gateways = Gateways::new(QueueLimits { max_bytes: 1024, max_frames: 4 }, 512, Duration::from_secs(300));
        let (a, b) = (gateways.upsert("a", config()), gateways.upsert("b", config()));
        let mut refused = None;
        for i in 0..=64u8 {
            let client = Requester::Public(Some(std::net::IpAddr::from([10, 0, 0, i / 16])));
            if let Err(why) = gateways.issue_ticket(&a, Box::new([]), client) {
                refused = Some((i, why));
                break;
            }
        }
        assert_eq!(refused, Some((64, Refusal::Tenant)));
        assert!(gateways.issue_ticket(&b, Box::new([]), ANYONE).is_ok());
        assert!(gateways.issue_ticket(&a, Box::new([]), Requester::Privileged).is_ok());
        // Deleting the gateway drops its tickets.
        gateways.remove("a");
        assert_eq!(gateways.tickets.len(), 1);
    }

    #[test]
    fn pending_tickets_can_be_retagged() {
        let gateways = Gateways::new(QueueLimits { max_bytes: 1024, max_frames: 4 }, 10, Duration::from_secs(300));
        let gw = gateways.upsert("g", config());
        let (a, _) = gateways.issue_ticket(&gw, Box::new([]), ANYONE).unwrap();
        assert!(gateways.is_pending(&a));
        assert!(gateways.retag_ticket(&a, Box::new(["t".into()])));
        assert_eq!(&*gateways.redeem(&a).unwrap().tags, &[Tag::from("t")]);
        assert!(!gateways.is_pending(&a));
    }

    #[test]
    fn permissions_match_star_groups_and_users() {
        let subjects = vec!["usergroups.12345".to_owned(), "users.u1".to_owned()];
        assert!(Permissions::allows(&subjects, &[Subject::user("x"), Subject::group("12345")]));
        assert!(Permissions::allows(&subjects, &[Subject::user("u1")]));
        assert!(!Permissions::allows(&subjects, &[Subject::user("x"), Subject::group("999")]));
        assert!(Permissions::allows(&["*".into()], &[Subject::user("x")]));
        assert!(!Permissions::allows(&["admins".into()], &[Subject::user("admins")]), "not a subject: nobody");
    }
}
