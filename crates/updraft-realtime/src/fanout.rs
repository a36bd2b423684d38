//! What a node does with a publication from the bus: resolve receivers against its own sockets.
//!
//! Fan-outs run on a thread of their own, in the order they were published, and write to idle plain-TCP sockets
//! directly ([`updraft_gateway::Socket::flush_direct`]); only a socket with bytes in flight, a full window or TLS is
//! left to its connection task. On the HTTP runtime, a broadcast to 10k sockets held a worker for its whole length
//! (API requests waited behind it); as a task on the socket runtime, it queued behind the 10k socket tasks of the
//! broadcast before it. The thread looks for new publications every few hundred sockets it writes, so a socket not
//! yet written gets the frames of both in one write, and a small fan-out (a tag, a few sockets) is written as soon
//! as it is taken, ahead of the rest of a broadcast, together with whatever frames of the broadcast its receivers
//! still had queued (a socket's frames always leave in order).
//!
//! **Which work goes first.** On a busy core, the kernel favours whichever thread has the lower niceness. Frames
//! should not wait for a burst of EDS writes, and EDS requests should not wait for a long fan-out; no fixed
//! priority gives both. The lighter of the two is the one to favour: it needs the core for short turns only, and
//! the heavier one loses little by letting it go first. So the fan-out's work is done by one of two threads, one at
//! the frames' priority (`--frames-nice`, the server's own by default on one CPU) and one at the API's (started
//! from an HTTP worker, it shares that runtime's niceness and slice, see `updraft_server::runtimes`), and every
//! [`DECIDE_EVERY`] the one writing measures the CPU time the rest of the process used (the API's work: the
//! helper's and the socket tasks' are the frames'): below a quarter of a core, the API is the lighter work and the
//! thread at its priority writes; above, the other one. Only one writes at a time; they hand over the queue under a
//! lock.
//!
//! **More than one CPU.** The writing thread then hands the chunk of sockets after its own to a helper thread
//! (`Helper`) whenever that one is idle, so a broadcast's walk is written on two cores, at the writing thread's
//! niceness.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use updraft_bus::{BoxFuture, Deliver, Publication};
use updraft_gateway::{Gateways, Receivers, Socket, SocketId};

/// Publications waiting for the fan-out thread; publishers wait for room beyond this.
const QUEUE: usize = 1024;
/// Publications taken from the queue at a time.
const MAX_BATCH: usize = 64;
/// Sockets written between two looks at the queue.
const FLUSH_CHUNK: usize = 256;
/// A fan-out that adds at most this many sockets to the queue of sockets to write is written at once, ahead of a
/// broadcast's backlog: a tagged send or a unicast should not wait the length of someone else's broadcast.
const SMALL_FANOUT: usize = FLUSH_CHUNK;
/// How often the writing thread measures the CPU time of the rest of the process.
const DECIDE_EVERY: Duration = Duration::from_millis(200);

/// Starts the fan-out's two threads: one here, at niceness `frames_nice` (`None`: the caller's), and one from a task
/// of the current runtime, at its workers' priority. `sockets` is the runtime of the sockets' connection loops, whose
/// work (the writes handed back to them) counts as the fan-out's when deciding which thread writes. Call it from the
/// server's main thread, within the HTTP runtime.
pub async fn deliver_locally(
    gateways: Arc<Gateways>,
    frames_nice: Option<i32>,
    sockets: Handle,
) -> std::io::Result<Deliver> {
    let (tx, rx) = mpsc::channel::<Queued>(QUEUE);
    let shared = Arc::new(Shared {
        work: Mutex::new(Work::new(rx, Helper::start(frames_nice)?, sockets)),
        turn: Condvar::new(),
        deferring: metrics::gauge!("updraft_mws_fanout_deferring"),
    });
    // Exported from the start, not only after the first hand-over.
    shared.deferring.set(0.0);
    let (first, second) = (shared.clone(), gateways.clone());
    std::thread::Builder::new().name("updraft-fanout".into()).spawn(move || {
        take_niceness(frames_nice);
        fan_out(&first, &second, false);
    })?;
    tokio::spawn(async move {
        std::thread::Builder::new().name("updraft-fan-api".into()).spawn(move || fan_out(&shared, &gateways, true))
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(Arc::new(move |publication: Publication| -> BoxFuture<'static, ()> {
        let tx = tx.clone();
        Box::pin(async move {
            let (done, delivered) = oneshot::channel();
            // Either fails only once the fan-out threads are gone, and with them the node's sockets.
            if tx.send((publication, Instant::now(), done)).await.is_ok() {
                let _ = delivered.await;
            }
        })
    }))
}

/// Whom `publication` is for, among a gateway's sockets.
pub fn receivers(publication: &Publication) -> Receivers {
    Receivers {
        everyone: publication.everyone,
        // Ids that are not 64 hex characters name no socket.
        sockets: publication.sockets.iter().filter_map(|s| SocketId::parse(s)).collect(),
        tags: publication.tags.clone(),
    }
}

/// A publication, when it was queued, and whom to tell once it is in every outbox.
type Queued = (Publication, Instant, oneshot::Sender<()>);

struct Shared {
    /// Held by the thread that writes.
    work: Mutex<Work>,
    /// Signalled when the turn passes to the other thread, or the bus is gone.
    turn: Condvar,
    deferring: metrics::Gauge,
}

/// The fan-out's state, owned by whichever thread holds the lock.
struct Work {
    queue: mpsc::Receiver<Queued>,
    /// Sockets with frames queued for the fan-out to write, in the order they got their first one.
    flush: VecDeque<Arc<Socket>>,
    /// Receivers of the current publication that were in `flush` already.
    behind: Vec<Arc<Socket>>,
    /// Whether the thread at the API's priority is the one to write.
    deferring: bool,
    /// With more than one CPU, the thread that writes a second chunk of sockets beside the writing one.
    helper: Option<Helper>,
    /// The bus is gone: both threads stop.
    closed: bool,
    /// The last decision, the process's CPU time then, the frames' other work then (the helper's CPU time, the
    /// socket runtime's busy time), and the writing threads' CPU time since.
    decided_at: Instant,
    process_cpu_then: Duration,
    frames_then: Duration,
    fanout_cpu: Duration,
    sockets: Handle,
    meters: Meters,
}

struct Meters {
    delivered: metrics::Counter,
    dropped: metrics::Counter,
    fanout_sockets: metrics::Histogram,
    fanout_batch: metrics::Histogram,
    /// How long a publication waited for the fan-out: a fan-out that outgrows its core shows here first.
    waited: metrics::Histogram,
}

/// One fan-out thread: writes while it is its turn, waits while it is the other's. Runs until the bus is dropped.
fn fan_out(shared: &Shared, gateways: &Gateways, deferring: bool) {
    // The helper writes at the niceness of the thread handing it sockets.
    let nice = niceness();
    let mut work = shared.work.lock().expect("fan-out lock");
    loop {
        while work.deferring != deferring && !work.closed {
            work = shared.turn.wait(work).expect("fan-out lock");
        }
        if work.closed {
            return;
        }
        let mut mark = thread_cpu();
        loop {
            if !work.step(gateways, nice) {
                work.closed = true;
                shared.turn.notify_all();
                return;
            }
            if work.decided_at.elapsed() >= DECIDE_EVERY {
                let now = thread_cpu();
                work.fanout_cpu += now.saturating_sub(mark);
                mark = now;
                if work.decide() != deferring {
                    shared.deferring.set(f64::from(u8::from(work.deferring)));
                    shared.turn.notify_all();
                    break;
                }
            }
        }
    }
}

impl Work {
    fn new(queue: mpsc::Receiver<Queued>, helper: Option<Helper>, sockets: Handle) -> Work {
        let mut work = Work {
            queue,
            flush: VecDeque::new(),
            behind: Vec::new(),
            deferring: false,
            helper,
            closed: false,
            decided_at: Instant::now(),
            process_cpu_then: process_cpu(),
            frames_then: Duration::ZERO,
            fanout_cpu: Duration::ZERO,
            sockets,
            meters: Meters {
                delivered: metrics::counter!("updraft_mws_frames_delivered_total"),
                dropped: metrics::counter!("updraft_mws_sockets_dropped_slow_total"),
                fanout_sockets: metrics::histogram!("updraft_mws_fanout_sockets"),
                fanout_batch: metrics::histogram!("updraft_mws_fanout_batch_publications"),
                waited: metrics::histogram!("updraft_mws_fanout_queue_seconds"),
            },
        };
        work.frames_then = work.frames_elsewhere();
        work
    }

    /// Which thread writes next: the one at the API's priority unless the rest of the process kept more than a
    /// quarter of a core busy since the last decision. The fan-out's own use is no guide: a broadcast a second is
    /// light on average but takes the whole core for its walk, and requests must not wait for it. The frames' work
    /// elsewhere (the helper, the socket tasks) is not the rest: counted as the API's, a heavy fan-out on two cores
    /// passed for a busy API and was favoured, and creates beside 100k deliveries/s took 16 ms at p99 instead of 10.
    fn decide(&mut self) -> bool {
        let (process_cpu, frames) = (process_cpu(), self.frames_elsewhere());
        let others = process_cpu
            .saturating_sub(self.process_cpu_then)
            .saturating_sub(self.fanout_cpu)
            .saturating_sub(frames.saturating_sub(self.frames_then));
        self.deferring = others < self.decided_at.elapsed() / 4;
        (self.decided_at, self.process_cpu_then, self.frames_then, self.fanout_cpu) =
            (Instant::now(), process_cpu, frames, Duration::ZERO);
        self.deferring
    }

    /// The helper's CPU time and the socket runtime's busy time so far.
    fn frames_elsewhere(&self) -> Duration {
        let metrics = self.sockets.metrics();
        let sockets: Duration = (0..metrics.num_workers()).map(|w| metrics.worker_total_busy_duration(w)).sum();
        let helper = self.helper.as_ref().map_or(0, |h| h.cpu_ns.load(Ordering::Relaxed));
        sockets + Duration::from_nanos(helper)
    }

    /// Takes the publications waiting (waits for one with nothing left to write), queues their frames, and writes
    /// one chunk of sockets; `nice` is the calling thread's niceness. False once the bus is gone.
    fn step(&mut self, gateways: &Gateways, nice: i32) -> bool {
        let mut next = if self.flush.is_empty() {
            match self.queue.blocking_recv() {
                Some(first) => Some(first),
                None => return false,
            }
        } else {
            self.queue.try_recv().ok()
        };
        let mut taken = 0;
        while let Some((publication, queued_at, done)) = next {
            taken += 1;
            self.meters.waited.record(queued_at.elapsed().as_secs_f64());
            if let Some(gateway) = gateways.get(&publication.gateway) {
                let receivers = receivers(&publication);
                let queued = self.flush.len();
                // A broadcast reaches every socket: it is never small, so its receivers are not collected.
                let collect = (!receivers.everyone).then_some(&mut self.behind);
                let fanout = gateway.hub.publish_deferred(
                    &publication.data,
                    &receivers,
                    publication.seq,
                    &mut self.flush,
                    collect,
                );
                // Writing a receiver early writes its earlier frames too, in order; one that was queued already
                // stays in the queue and finds nothing (or only newer frames) to write when its turn comes.
                if self.flush.len() - queued + self.behind.len() <= SMALL_FANOUT {
                    for socket in self.flush.drain(queued..).chain(self.behind.drain(..)) {
                        socket.flush_direct();
                    }
                }
                self.behind.clear();
                self.meters.delivered.increment(fanout.delivered);
                self.meters.fanout_sockets.record(fanout.delivered as f64);
                self.meters.dropped.increment(fanout.dropped);
            }
            // Queued in every outbox: accepted for delivery.
            let _ = done.send(());
            next = if taken < MAX_BATCH { self.queue.try_recv().ok() } else { None };
        }
        if taken > 0 {
            self.meters.fanout_batch.record(taken as f64);
        }
        // A publication that arrives meanwhile is queued right after this chunk: the sockets not yet written then
        // get both frames in one write, the ones written already go to the back of the line.
        let mine = FLUSH_CHUNK.min(self.flush.len());
        if let Some(helper) = &self.helper
            && self.flush.len() > mine
            && helper.is_idle()
        {
            let theirs = FLUSH_CHUNK.min(self.flush.len() - mine);
            helper.write(self.flush.drain(mine..mine + theirs).collect(), nice);
        }
        for socket in self.flush.drain(..mine) {
            socket.flush_direct();
        }
        true
    }
}

/// A second writer for long fan-outs when the process may use more than one CPU: the writing thread hands it the
/// chunk after its own while it is idle, so a broadcast's walk is written on two cores (and takes two threads'
/// share of a core the API keeps busy). A socket's writes are serialized by its outbox lock, so its frames still
/// leave in order whichever thread writes them; order across sockets was never promised. With a raised priority
/// for frames, it writes at the niceness of the thread that handed it the chunk, so that it favours frames exactly
/// when that thread does.
struct Helper {
    chunks: SyncSender<(Vec<Arc<Socket>>, i32)>,
    busy: Arc<AtomicBool>,
    /// Its thread's CPU time, in nanoseconds, as of its last chunk.
    cpu_ns: Arc<AtomicU64>,
}

impl Helper {
    /// `None` on one CPU, where a second writer would only take turns with the first.
    fn start(frames_nice: Option<i32>) -> std::io::Result<Option<Helper>> {
        if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
            return Ok(None);
        }
        let (chunks, incoming) = std::sync::mpsc::sync_channel::<(Vec<Arc<Socket>>, i32)>(1);
        let (busy, cpu_ns) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (idle, spent) = (busy.clone(), cpu_ns.clone());
        std::thread::Builder::new().name("updraft-fan-help".into()).spawn(move || {
            take_niceness(frames_nice);
            // Without the privilege a raised priority took, a niced helper could not come back: it keeps its own.
            let follows = frames_nice.is_some();
            let mut current = niceness();
            // Ends when the fan-out's state, and with it the sender, is dropped.
            for (chunk, nice) in incoming {
                if follows && nice != current && rustix::process::setpriority_process(None, nice).is_ok() {
                    current = nice;
                }
                for socket in chunk {
                    socket.flush_direct();
                }
                spent.store(thread_cpu().as_nanos() as u64, Ordering::Relaxed);
                idle.store(false, Ordering::Release);
            }
        })?;
        Ok(Some(Helper { chunks, busy, cpu_ns }))
    }

    fn is_idle(&self) -> bool {
        !self.busy.load(Ordering::Acquire)
    }

    fn write(&self, chunk: Vec<Arc<Socket>>, nice: i32) {
        self.busy.store(true, Ordering::Release);
        // Idle means its one slot is free: this never blocks.
        let _ = self.chunks.send((chunk, nice));
    }
}

/// Sets the calling thread's niceness, if given (the caller checked that the kernel allows it).
fn take_niceness(nice: Option<i32>) {
    if let Some(nice) = nice {
        // `None`: on Linux, the calling thread only.
        let _ = rustix::process::setpriority_process(None, nice);
    }
}

/// The calling thread's niceness (on Linux, `getpriority` of "this process" is of this thread).
fn niceness() -> i32 {
    rustix::process::getpriority_process(None).unwrap_or(0)
}

fn thread_cpu() -> Duration {
    cpu_time(rustix::time::ClockId::ThreadCPUTime)
}

fn process_cpu() -> Duration {
    cpu_time(rustix::time::ClockId::ProcessCPUTime)
}

fn cpu_time(clock: rustix::time::ClockId) -> Duration {
    let t = rustix::time::clock_gettime(clock);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}
