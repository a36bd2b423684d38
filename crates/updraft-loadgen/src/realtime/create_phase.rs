//! The create phase of the realtime scenarios: todos created over REST on a few keep-alive connections, paced
//! open loop at a fixed rate or back to back, optionally mixed with reads and lists; their round trips as the
//! client sees them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::Peer;
use crate::http::{HttpConn, Target};
use crate::report::{SharedReport, round};
use crate::scenarios::{Common, Schedule, percentile};

/// How creates are paced.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CreatePlan {
    /// Requests per second, open loop; 0: back to back on every connection (closed loop).
    pub rate: u64,
    pub seconds: f64,
    /// Concurrent keep-alive connections.
    pub creators: usize,
    pub mix: Mix,
}

/// The requests of a create phase, as weights: of every `creates + reads + lists` requests, `creates` are creates,
/// `reads` read one object created before (by id, at random) and `lists` list the 20 newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mix {
    pub creates: u32,
    pub reads: u32,
    pub lists: u32,
}

impl Mix {
    pub(crate) const CREATES: Mix = Mix { creates: 1, reads: 0, lists: 0 };

    fn request(&self, k: usize) -> Request {
        let turn = (k % (self.creates + self.reads + self.lists) as usize) as u32;
        if turn < self.creates {
            Request::Create
        } else if turn < self.creates + self.reads {
            Request::Read
        } else {
            Request::List
        }
    }
}

impl std::str::FromStr for Mix {
    type Err = String;

    /// `creates:reads:lists`, e.g. `2:1:1`.
    fn from_str(text: &str) -> Result<Mix, String> {
        let parts: Vec<u32> = text.split(':').map(str::parse).collect::<Result<_, _>>().map_err(|e| format!("{e}"))?;
        match parts[..] {
            [creates, reads, lists] if creates > 0 => Ok(Mix { creates, reads, lists }),
            _ => Err("a mix is creates:reads:lists, with at least one create".into()),
        }
    }
}

/// A worker's round trips, µs: of creates, reads and lists.
type RoundTrips = [Vec<u64>; 3];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Create,
    Read,
    List,
}

/// What a create phase did.
pub(crate) struct CreateOutcome {
    pub planned: Option<usize>,
    pub sent_ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub late: u64,
    pub max_lag_us: u64,
    pub seconds: f64,
    /// Round trips of successful creates, µs, sorted.
    pub round_trips_us: Vec<u64>,
    /// Of successful reads and lists (`Mix`), µs, sorted.
    pub read_round_trips_us: Vec<u64>,
    pub list_round_trips_us: Vec<u64>,
}

impl CreateOutcome {
    pub(crate) fn record(&self, r: &SharedReport, plan: &CreatePlan) {
        r.set("rate_target", plan.rate);
        if let Some(planned) = self.planned {
            r.set(if plan.mix == Mix::CREATES { "creates_planned" } else { "requests_planned" }, planned);
        }
        r.set("creators", plan.creators);
        r.set("creates_sent", self.sent_ok);
        r.set("create_s", round(self.seconds, 3));
        r.set("creates_per_s", round(self.sent_ok as f64 / self.seconds.max(1e-9), 1));
        r.set("create_errors", self.errors);
        if let Some(e) = &self.first_error {
            r.set("first_create_error", e.as_str());
        }
        if plan.rate > 0 {
            r.set("late_sends", self.late);
            r.set("max_send_lag_us", self.max_lag_us);
        }
        for (name, rt) in
            [("create", &self.round_trips_us), ("read", &self.read_round_trips_us), ("list", &self.list_round_trips_us)]
        {
            if !rt.is_empty() {
                r.set(&format!("{name}s_done"), rt.len());
                r.set(&format!("{name}_rtt_p50_us"), percentile(rt, 0.5));
                r.set(&format!("{name}_rtt_p99_us"), percentile(rt, 0.99));
            }
        }
    }
}

/// How long after the create phase an unanswered create is waited for.
const CREATE_OVERRUN: Duration = Duration::from_secs(15);

/// Makes the k-th todo's body.
pub(crate) type TodoBody = Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync>;

/// Creates todos as `plan` says until its time is up (or the soft deadline); `body(k)` makes the k-th.
pub(crate) async fn run_creates(c: &Common, peer: &Arc<Peer>, plan: CreatePlan, body: TodoBody) -> CreateOutcome {
    let planned = (plan.rate > 0).then(|| (plan.rate as f64 * plan.seconds).round() as usize);
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let end = (start + Duration::from_secs_f64(plan.seconds)).min(c.soft_deadline);
    // A server that falls far behind would hold creates open past any deadline, and with them every figure:
    // a create unanswered this long after the phase is given up (and counted as an error).
    let hard_end = (end + CREATE_OVERRUN).min(c.soft_deadline - Duration::from_secs(2)).max(end);
    let creator = Creator {
        target: c.target.clone(),
        peer: peer.clone(),
        plan,
        planned,
        end,
        hard_end,
        next: Arc::new(AtomicUsize::new(0)),
        sent_ok: Arc::new(AtomicU64::new(0)),
        errors: Arc::new(AtomicU64::new(0)),
        // Consulted only when paced (rate > 0); unpaced creators go as fast as they can until `end`.
        schedule: Arc::new(Schedule::new(start, plan.rate.max(1) as f64, end)),
        created: Arc::default(),
        list_path: peer.list_path(),
        body,
    };
    let mut workers: Vec<JoinHandle<(RoundTrips, Option<String>)>> = Vec::new();
    for _ in 0..plan.creators.max(1) {
        workers.push(tokio::spawn(create_worker(creator.clone())));
    }
    let ([mut round_trips_us, mut read_round_trips_us, mut list_round_trips_us], first_error) =
        join_creators(workers).await;
    let seconds = start.elapsed().as_secs_f64();
    round_trips_us.sort_unstable();
    read_round_trips_us.sort_unstable();
    list_round_trips_us.sort_unstable();
    CreateOutcome {
        planned,
        sent_ok: creator.sent_ok.load(Ordering::Relaxed),
        errors: creator.errors.load(Ordering::Relaxed),
        first_error,
        late: creator.schedule.late(),
        max_lag_us: creator.schedule.max_lag_us(),
        seconds,
        round_trips_us,
        read_round_trips_us,
        list_round_trips_us,
    }
}

/// What each create worker of a phase gets: the plan and its deadlines, and what the workers share.
#[derive(Clone)]
struct Creator {
    target: Arc<Target>,
    peer: Arc<Peer>,
    plan: CreatePlan,
    planned: Option<usize>,
    end: tokio::time::Instant,
    hard_end: tokio::time::Instant,
    /// The index of the next request to send.
    next: Arc<AtomicUsize>,
    sent_ok: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    schedule: Arc<Schedule>,
    /// Ids of created objects, for reads to pick from (only when the mix has reads).
    created: Arc<Mutex<Vec<String>>>,
    list_path: String,
    body: TodoBody,
}

/// One keep-alive connection's share of a create phase: takes the next request's index until the plan is done,
/// sends it when due (paced) or at once; answers its round trips and its first error.
async fn create_worker(creator: Creator) -> (RoundTrips, Option<String>) {
    let Creator {
        target,
        peer,
        plan,
        planned,
        end,
        hard_end,
        next,
        sent_ok,
        errors,
        schedule,
        created,
        list_path,
        body,
    } = creator;
    let mut conn = HttpConn::new(target);
    let headers: Vec<(&str, &str)> = peer.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (mut rtts, mut first_error) = ([Vec::new(), Vec::new(), Vec::new()], None);
    loop {
        let k = next.fetch_add(1, Ordering::Relaxed);
        if let Some(planned) = planned {
            if k >= planned || !schedule.wait_turn(k).await {
                break;
            }
        } else if tokio::time::Instant::now() >= end {
            break;
        }
        let (kind, read_id) = pick_request(plan.mix, k, &created);
        let payload = if kind == Request::Create { body(k) } else { Vec::new() };
        let read_path = read_id.map(|id| format!("{}/{id}", peer.create_path));
        let sent = Instant::now();
        let request = match kind {
            Request::Create => conn.send("POST", &peer.create_path, &headers, Some(("application/json", &payload))),
            Request::Read => conn.send("GET", read_path.as_deref().unwrap_or_default(), &headers, None),
            Request::List => conn.send("GET", &list_path, &headers, None),
        };
        let Ok(outcome) = tokio::time::timeout_at(hard_end, request).await else {
            errors.fetch_add(1, Ordering::Relaxed);
            first_error.get_or_insert_with(|| {
                format!("a create was still unanswered {}s after the create phase", CREATE_OVERRUN.as_secs())
            });
            break;
        };
        let (want, what) = match kind {
            Request::Create => (201, "create"),
            Request::Read => (200, "read"),
            Request::List => (200, "list"),
        };
        match outcome.and_then(|r| r.expect_status(want, what)) {
            Ok(response) => {
                let rtt = sent.elapsed().as_micros() as u64;
                match kind {
                    Request::Create => {
                        rtts[0].push(rtt);
                        sent_ok.fetch_add(1, Ordering::Relaxed);
                        if plan.mix.reads > 0
                            && let Some(id) = peer.created_id(&response)
                        {
                            created.lock().unwrap_or_else(|e| e.into_inner()).push(id);
                        }
                    }
                    Request::Read => rtts[1].push(rtt),
                    Request::List => rtts[2].push(rtt),
                }
            }
            Err(e) => {
                errors.fetch_add(1, Ordering::Relaxed);
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    (rtts, first_error)
}

/// The k-th request of `mix`, and for a read the id it reads: one created before, at random. Before the first
/// create is answered there is none, and a read becomes a create.
fn pick_request(mix: Mix, k: usize, created: &Mutex<Vec<String>>) -> (Request, Option<String>) {
    let read_id = match mix.request(k) {
        Request::Read => {
            let ids = created.lock().unwrap_or_else(|e| e.into_inner());
            (!ids.is_empty()).then(|| ids[rand::random_range(0..ids.len())].clone())
        }
        _ => None,
    };
    let kind = match (mix.request(k), &read_id) {
        (Request::List, _) => Request::List,
        (Request::Read, Some(_)) => Request::Read,
        _ => Request::Create,
    };
    (kind, read_id)
}

/// Waits for every create worker; answers their round trips, put together, and the first error any of them met.
async fn join_creators(workers: Vec<JoinHandle<(RoundTrips, Option<String>)>>) -> (RoundTrips, Option<String>) {
    let mut all: RoundTrips = Default::default();
    let mut first_error = None;
    for w in workers {
        if let Ok(([creates, reads, lists], e)) = w.await {
            all[0].extend(creates);
            all[1].extend(reads);
            all[2].extend(lists);
            if let Some(e) = e {
                first_error.get_or_insert(e);
            }
        }
    }
    (all, first_error)
}
