//! Single-use tickets waiting to be redeemed (socket URIs, stream URLs): bounded in total, per tenant and per
//! client address, and expired in order without ever scanning them.
//!
//! Every ticket lives equally long, so tickets expire in the order they were issued. They are kept in a few
//! generations, each holding the tickets issued during one slice of their lifetime; once the newest ticket of
//! the oldest generation has expired, the whole generation goes at once (and is freed outside the lock). Each
//! generation also counts its tickets per tenant and per client, so a quota check is a handful of lookups.
//! A ticket is refused after its own expiry; it only keeps counting against the quotas for up to one slice more.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::socket::{IdBuildHasher, SocketId};

/// Generations per ticket lifetime: more means quotas are freed closer to expiry, but a quota check or a
/// lookup may visit more of them.
const GENERATIONS: u32 = 4;

/// How many tickets may be pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// All tenants together: the memory bound.
    pub total: usize,
    /// One tenant's public (or one tenant's privileged) tickets.
    pub per_tenant: usize,
    /// One client address's public tickets, whatever their tenant.
    pub per_client: usize,
}

impl Limits {
    /// A tenant gets an eighth of `total`, so one tenant (or a flood against it) cannot refuse everyone else;
    /// a client address gets a quarter of that, so one client cannot use up a tenant's quota alone (several
    /// clients behind one proxy or NAT share one). Small totals (tests, tiny deployments) are not divided
    /// below a floor, which would leave a tenant almost nothing.
    pub fn shares_of(total: usize) -> Limits {
        const FLOOR: usize = 16;
        let share = |divisor: usize| (total / divisor).max(total.min(FLOOR));
        Limits { total, per_tenant: share(8), per_client: share(32) }
    }
}

/// Who asks for a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    /// The tenant's own server (a gateway's security token, a backend's secret): its tickets have a tenant
    /// quota of their own, so a flood of public requests cannot lock it out, and no per-client quota.
    Privileged,
    /// Anyone else, from this address when the server knows it.
    Public(Option<IpAddr>),
}

/// Why a ticket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server's total is reached.
    Full,
    /// The tenant's quota is reached.
    Tenant,
    /// The client address's quota is reached.
    Client,
}

/// A client address as the quotas see it: an IPv4 address, or the /64 network of an IPv6 one (a single host
/// usually holds a whole /64). IPv4 addresses are marked with the top bit, which no routed IPv6 prefix has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ClientKey(u64);

impl ClientKey {
    fn of(addr: IpAddr) -> ClientKey {
        match addr.to_canonical() {
            IpAddr::V4(v4) => ClientKey(1 << 63 | u64::from(u32::from(v4))),
            IpAddr::V6(v6) => ClientKey((u128::from(v6) >> 64) as u64),
        }
    }
}

/// Tenant, whether privileged: the key of a tenant quota.
type TenantKey<T> = (T, bool);

struct Entry<T, V> {
    value: V,
    tenant: TenantKey<T>,
    client: Option<ClientKey>,
    expires: Instant,
}

struct Generation<T, V> {
    opened: Instant,
    entries: HashMap<SocketId, Entry<T, V>, IdBuildHasher>,
    tenants: HashMap<TenantKey<T>, usize>,
    clients: HashMap<ClientKey, usize>,
}

impl<T: Hash + Eq + Clone, V> Generation<T, V> {
    fn new(opened: Instant) -> Generation<T, V> {
        Generation { opened, entries: HashMap::default(), tenants: HashMap::new(), clients: HashMap::new() }
    }

    fn remove(&mut self, id: &SocketId) -> Option<Entry<T, V>> {
        let entry = self.entries.remove(id)?;
        decrement(&mut self.tenants, &entry.tenant);
        if let Some(client) = &entry.client {
            decrement(&mut self.clients, client);
        }
        Some(entry)
    }
}

fn decrement<K: Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}

struct Inner<T, V> {
    /// Oldest first; the newest takes new tickets.
    generations: VecDeque<Generation<T, V>>,
    len: usize,
}

/// Pending tickets of tenants `T` (compared by `Eq`), each carrying a `V`.
pub struct Pending<T, V> {
    inner: Mutex<Inner<T, V>>,
    limits: Limits,
    lifetime: Duration,
    slice: Duration,
}

impl<T: Hash + Eq + Clone, V> Pending<T, V> {
    pub fn new(limits: Limits, lifetime: Duration) -> Pending<T, V> {
        let slice = (lifetime / GENERATIONS).max(Duration::from_millis(1));
        Pending { inner: Mutex::new(Inner { generations: VecDeque::new(), len: 0 }), limits, lifetime, slice }
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Issues a ticket for `tenant`; answers its id and when it expires.
    pub fn issue(&self, tenant: T, requester: Requester, value: V) -> Result<(SocketId, Instant), Refusal> {
        self.issue_at(Instant::now(), tenant, requester, value)
    }

    fn issue_at(
        &self,
        now: Instant,
        tenant: T,
        requester: Requester,
        value: V,
    ) -> Result<(SocketId, Instant), Refusal> {
        let (privileged, client) = match requester {
            Requester::Privileged => (true, None),
            Requester::Public(addr) => (false, addr.map(ClientKey::of)),
        };
        let tenant = (tenant, privileged);
        let id = SocketId::random();
        let mut inner = self.inner.lock().expect("pending lock");
        let expired = self.expire(&mut inner, now);
        let res = self.admit(&inner, &tenant, client.as_ref());
        let res = res.map(|()| {
            if inner.generations.back().is_none_or(|g| now >= g.opened + self.slice) {
                inner.generations.push_back(Generation::new(now));
            }
            let newest = inner.generations.back_mut().expect("a generation");
            let expires = now + self.lifetime;
            // Looked up before inserting: most tickets find their tenant counted already, and need no clone of it.
            match newest.tenants.get_mut(&tenant) {
                Some(n) => *n += 1,
                None => {
                    newest.tenants.insert(tenant.clone(), 1);
                }
            }
            if let Some(client) = client {
                *newest.clients.entry(client).or_default() += 1;
            }
            newest.entries.insert(id, Entry { value, tenant, client, expires });
            inner.len += 1;
            (id, expires)
        });
        drop(inner);
        drop(expired);
        res
    }

    fn admit(&self, inner: &Inner<T, V>, tenant: &TenantKey<T>, client: Option<&ClientKey>) -> Result<(), Refusal> {
        if inner.len >= self.limits.total {
            return Err(Refusal::Full);
        }
        let tenant_count: usize = inner.generations.iter().filter_map(|g| g.tenants.get(tenant)).sum();
        if tenant_count >= self.limits.per_tenant {
            return Err(Refusal::Tenant);
        }
        if let Some(client) = client {
            let client_count: usize = inner.generations.iter().filter_map(|g| g.clients.get(client)).sum();
            if client_count >= self.limits.per_client {
                return Err(Refusal::Client);
            }
        }
        Ok(())
    }

    /// Unlinks the generations whose every ticket has expired; the caller drops them after unlocking.
    fn expire(&self, inner: &mut Inner<T, V>, now: Instant) -> Vec<Generation<T, V>> {
        let mut gone = Vec::new();
        while inner.generations.front().is_some_and(|g| now >= g.opened + self.slice + self.lifetime) {
            let generation = inner.generations.pop_front().expect("a generation");
            inner.len -= generation.entries.len();
            gone.push(generation);
        }
        gone
    }

    /// Takes a ticket for use: its tenant and value. An expired ticket is gone as if it never existed.
    pub fn take(&self, id: &SocketId) -> Option<(T, V)> {
        self.take_if(id, |_| true)
    }

    /// Takes a ticket when `wanted` says so of its tenant (e.g. withdrawing only one's own tickets).
    pub fn take_if(&self, id: &SocketId, wanted: impl FnOnce(&T) -> bool) -> Option<(T, V)> {
        self.take_if_at(Instant::now(), id, wanted)
    }

    fn take_if_at(&self, now: Instant, id: &SocketId, wanted: impl FnOnce(&T) -> bool) -> Option<(T, V)> {
        let mut inner = self.inner.lock().expect("pending lock");
        let expired = self.expire(&mut inner, now);
        // Most tickets are used soon after they are issued: look in the newest generation first.
        let generation = inner.generations.iter_mut().rev().find(|g| g.entries.contains_key(id))?;
        if !wanted(&generation.entries[id].tenant.0) {
            return None;
        }
        let entry = generation.remove(id).expect("present");
        inner.len -= 1;
        drop(inner);
        drop(expired);
        (entry.expires > now).then_some((entry.tenant.0, entry.value))
    }

    /// Whether an unexpired ticket `id` is pending.
    pub fn contains(&self, id: &SocketId) -> bool {
        let now = Instant::now();
        let inner = self.inner.lock().expect("pending lock");
        inner.generations.iter().rev().any(|g| g.entries.get(id).is_some_and(|e| e.expires > now))
    }

    /// Changes the value of a pending ticket; false when there is none.
    pub fn update(&self, id: &SocketId, change: impl FnOnce(&mut V)) -> bool {
        let mut inner = self.inner.lock().expect("pending lock");
        match inner.generations.iter_mut().rev().find_map(|g| g.entries.get_mut(id)) {
            Some(entry) => {
                change(&mut entry.value);
                true
            }
            None => false,
        }
    }

    /// Drops every ticket of `tenant`. This visits every ticket: for rare administrative calls (deleting a
    /// tenant), never for a request path.
    pub fn remove_tenant(&self, tenant: &T) -> usize {
        let mut inner = self.inner.lock().expect("pending lock");
        let mut removed = Vec::new();
        for generation in inner.generations.iter_mut() {
            let ids: Vec<SocketId> =
                generation.entries.iter().filter(|(_, e)| &e.tenant.0 == tenant).map(|(id, _)| *id).collect();
            removed.extend(ids.iter().filter_map(|id| generation.remove(id)));
        }
        inner.len -= removed.len();
        drop(inner);
        removed.len()
    }

    /// Frees the generations that have expired; tickets are also freed as new ones are issued, so this is only
    /// for memory after the last burst. Answers how many tickets went.
    pub fn sweep(&self) -> usize {
        self.sweep_at(Instant::now())
    }

    fn sweep_at(&self, now: Instant) -> usize {
        let mut inner = self.inner.lock().expect("pending lock");
        let expired = self.expire(&mut inner, now);
        drop(inner);
        expired.iter().map(|g| g.entries.len()).sum()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("pending lock").len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn addr(last: u8) -> Requester {
        Requester::Public(Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))))
    }

    fn limits(total: usize, per_tenant: usize, per_client: usize) -> Limits {
        Limits { total, per_tenant, per_client }
    }

    #[test]
    fn one_tenant_at_its_quota_does_not_refuse_another() {
        let pending = Pending::new(limits(100, 4, 100), Duration::from_secs(300));
        for _ in 0..4 {
            pending.issue("a", addr(1), ()).unwrap();
        }
        assert_eq!(pending.issue("a", addr(2), ()), Err(Refusal::Tenant));
        assert!(pending.issue("b", addr(1), ()).is_ok());
        // The tenant's own server has a quota apart from the public's.
        assert!(pending.issue("a", Requester::Privileged, ()).is_ok());
    }

    #[test]
    fn one_client_at_its_quota_does_not_refuse_another() {
        let pending = Pending::new(limits(100, 100, 2), Duration::from_secs(300));
        let (first, _) = pending.issue("a", addr(1), ()).unwrap();
        pending.issue("b", addr(1), ()).unwrap();
        assert_eq!(pending.issue("c", addr(1), ()), Err(Refusal::Client));
        assert!(pending.issue("a", addr(2), ()).is_ok());
        // Unknown addresses and privileged callers have no client quota.
        assert!(pending.issue("a", Requester::Public(None), ()).is_ok());
        // A used ticket gives its place back.
        assert!(pending.take(&first).is_some());
        assert!(pending.issue("c", addr(1), ()).is_ok());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_network() {
        let pending = Pending::new(limits(100, 100, 1), Duration::from_secs(300));
        let v6 = |text: &str| Requester::Public(Some(text.parse().unwrap()));
        pending.issue("a", v6("2001:db8::1"), ()).unwrap();
        assert_eq!(pending.issue("a", v6("2001:db8::2"), ()), Err(Refusal::Client));
        assert!(pending.issue("a", v6("2001:db8:0:1::1"), ()).is_ok());
        // An IPv4-mapped address is that IPv4 client.
        pending.issue("a", addr(7), ()).unwrap();
        assert_eq!(pending.issue("a", v6("::ffff:10.0.0.7"), ()), Err(Refusal::Client));
    }

    #[test]
    fn the_total_bounds_every_tenant_together() {
        let pending = Pending::new(limits(3, 2, 10), Duration::from_secs(300));
        pending.issue("a", addr(1), ()).unwrap();
        pending.issue("a", addr(1), ()).unwrap();
        pending.issue("b", addr(2), ()).unwrap();
        assert_eq!(pending.issue("c", addr(3), ()), Err(Refusal::Full));
    }

    #[test]
    fn tickets_are_single_use_and_keep_their_values() {
        let pending = Pending::new(limits(10, 10, 10), Duration::from_secs(300));
        let (id, _) = pending.issue("a", addr(1), 7).unwrap();
        assert!(pending.contains(&id));
        assert!(pending.update(&id, |v| *v = 8));
        assert_eq!(pending.take_if(&id, |t| *t == "b"), None);
        assert_eq!(pending.take(&id), Some(("a", 8)));
        assert_eq!(pending.take(&id), None);
        assert!(!pending.contains(&id));
        assert!(pending.is_empty());
    }

    #[test]
    fn tickets_expire_in_order_a_generation_at_a_time() {
        let lifetime = Duration::from_secs(400);
        let slice = lifetime / GENERATIONS;
        let pending = Pending::new(limits(100, 1, 100), lifetime);
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let (old, _) = pending.issue_at(t0, "a", addr(1), ()).unwrap();
        let (young, _) = pending.issue_at(at(200), "b", addr(1), ()).unwrap();
        // Expired but its generation not yet over: refused, yet still counted.
        assert!(pending.take_if_at(at(400), &old, |_| false).is_none());
        assert_eq!(pending.issue_at(at(400), "a", addr(1), ()), Err(Refusal::Tenant));
        // Once its generation is over, the old ticket goes and frees its quota; the young one stays.
        let over = t0 + slice + lifetime;
        assert_eq!(pending.sweep_at(over), 1);
        assert!(pending.take_if_at(over, &old, |_| true).is_none());
        assert!(pending.issue_at(over, "a", addr(1), ()).is_ok());
        assert!(pending.contains(&young));
        assert_eq!(pending.take_if_at(at(599), &young, |_| true), Some(("b", ())));
        assert_eq!(pending.sweep_at(at(2000)), 1);
        assert!(pending.is_empty());
    }

    #[test]
    fn expired_tickets_free_their_quota_without_a_sweep() {
        let pending = Pending::new(limits(2, 2, 2), Duration::ZERO);
        let t0 = Instant::now();
        pending.issue_at(t0, "a", addr(1), ()).unwrap();
        pending.issue_at(t0, "a", addr(1), ()).unwrap();
        assert_eq!(pending.issue_at(t0, "a", addr(1), ()), Err(Refusal::Full));
        assert!(pending.issue_at(t0 + Duration::from_millis(1), "a", addr(1), ()).is_ok());
    }

    #[test]
    fn removing_a_tenant_drops_only_its_tickets() {
        let pending = Pending::new(limits(10, 10, 10), Duration::from_secs(300));
        pending.issue("a", addr(1), ()).unwrap();
        let (b, _) = pending.issue("b", addr(1), ()).unwrap();
        assert_eq!(pending.remove_tenant(&"a"), 1);
        assert_eq!(pending.len(), 1);
        assert!(pending.contains(&b));
    }

    #[test]
    fn shares_leave_small_totals_whole() {
        assert_eq!(Limits::shares_of(1_000_000), limits(1_000_000, 125_000, 31_250));
        assert_eq!(Limits::shares_of(5), limits(5, 5, 5));
        assert_eq!(Limits::shares_of(512), limits(512, 64, 16));
    }
}
