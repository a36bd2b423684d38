//! The two runtimes: one serving HTTP requests (and the database work they start), one serving open WebSockets.
//!
//! A broadcast to 10k sockets used to wake 10k connection tasks. On one runtime they all ran before the HTTP tasks
//! waiting behind them, so an EDS create waited for the whole fan-out (p99 4.7 → 300 ms at 100k deliveries/s on
//! one core). The fan-out itself now runs on a thread of its own and writes idle sockets directly
//! (`updraft_realtime::fanout`); the sockets' connection loops (reads, pings, closes, and the writes the fan-out
//! hands back) run on the socket runtime, on threads of their own, so the kernel shares the cores between requests
//! and sockets both ways. Each runtime has a worker per core, so both kinds of work use every core. A socket stays
//! registered with the HTTP runtime's I/O driver, which wakes its task here when it is readable (a ping or a pong
//! from the peer) or writable again after a full window: moving it to this runtime's driver cost 108 bytes a
//! socket.
//!
//! The reverse, a burst of EDS writes, used to share the cores evenly with the fan-out, and frames waited (p99
//! 142 → 312 ms beside 4,000 creates/s on one core). So the threads writing frames run more favoured than the
//! HTTP runtime's, by two means:
//! - `--api-nice` (default 10 when the server has one CPU, else 0) raises the HTTP runtime's niceness above the
//!   server's own. It needs no privilege, but a niced API also loses to every other process on the machine: on two
//!   cores, beside a load generator at niceness 0, creates waited 40 ms at p99 at nice 10.
//! - `--frames-nice` (default -10 with more than one CPU, else 0) lowers the niceness of the fan-out's writing
//!   threads below the server's own, so frames go first without handing the API's share to other processes; it
//!   needs CAP_SYS_NICE, and without it they keep the server's own (logged once). The socket runtime keeps the
//!   server's own: its tasks would run ahead of requests however light the API is.
//!
//! A fixed gap alone cannot serve both ways (at api-nice 10 on one core, creates waited 44–71 ms beside 100k
//! deliveries/s), so the fan-out has a second thread, started from an HTTP worker and so at the API's niceness,
//! which writes while the API is the lighter work (`updraft_realtime::fanout`): the lighter kind of work is the
//! favoured one. `--api-slice-us` (default: the kernel's) shortens the HTTP threads' time slice; measured, it gave
//! no gain beside a fan-out. Linux keeps a niceness per thread and a new thread inherits it, so everything the HTTP
//! threads start (SQLite's connection threads, the insert thread, blocking tasks) is niced too;
//! `Application::build` opens the store from a worker for that reason. The main thread keeps the server's own
//! niceness: the frames' threads take theirs when they start.
//!
//! The handshake stays an HTTP request; only the connection loop that follows runs on the socket runtime.

use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Handle, Runtime};

/// The runtime `main` serves HTTP on: tokio's default shape, with every thread `api_nice` above the caller's
/// niceness and, where the kernel allows it, time slice `slice` (see the module comment). Lowering one's own
/// priority needs no privilege; should the kernel refuse, the thread runs as it is.
pub fn http_runtime(api_nice: i32, slice: Option<Duration>) -> std::io::Result<Runtime> {
    let nice = (own_niceness() + api_nice).min(19);
    Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || {
            if !slice.is_some_and(|slice| set_this_thread_slice(nice, slice)) && api_nice != 0 {
                set_this_thread_niceness(nice);
            }
        })
        .on_thread_park(collect_freed_memory)
        .build()
}

/// The niceness the fan-out's threads take while frames are the lighter work: the caller's own plus
/// `frames_nice` (`--frames-nice`, 0 or below), if the kernel lets a thread take it. `None`: they keep the
/// caller's, because `frames_nice` is 0 or because raising a priority needs CAP_SYS_NICE, which the server lacks
/// (said once in the log). Call it from the main thread, whose niceness is the server's own.
pub fn frames_niceness(frames_nice: i32) -> Option<i32> {
    if frames_nice == 0 {
        return None;
    }
    let nice = (own_niceness() + frames_nice).max(-20);
    // Tried on a thread of its own: a raised priority could not be given back without the same privilege.
    let allowed = std::thread::spawn(move || set_this_thread_niceness(nice)).join().unwrap_or(false);
    if !allowed {
        tracing::warn!(
            frames_nice,
            "the kernel refused a higher priority for the threads writing frames (it needs CAP_SYS_NICE); they keep \
             the server's own, and a burst of requests can delay frames"
        );
    }
    allowed.then_some(nice)
}

/// The calling thread's niceness (on Linux, `getpriority` of "this process" is of this thread).
fn own_niceness() -> i32 {
    rustix::process::getpriority_process(None).unwrap_or(0)
}

/// Sets the calling thread's niceness; false when the kernel refuses.
fn set_this_thread_niceness(nice: i32) -> bool {
    // `None`: on Linux, the calling thread only.
    rustix::process::setpriority_process(None, nice).is_ok()
}

/// Sets the calling thread's niceness and EEVDF time slice (Linux 6.12+: `sched_attr.sched_runtime` of a
/// `SCHED_OTHER` thread). Niceness sets a thread's share of a busy core; the slice sets how soon it runs once it
/// wakes, since the scheduler picks the earliest virtual deadline and a deadline is one slice (scaled by weight)
/// away. A niced request thread with the default slice (0.7-3 ms) waited behind the fan-out's whole slice at
/// every wake; with a short one it is picked next, and still gets no more than its share during a burst. No
/// library wraps `sched_setattr`, hence the raw call. False when the kernel refuses (no such call, or a filter).
#[allow(unsafe_code)]
fn set_this_thread_slice(nice: i32, slice: Duration) -> bool {
    /// `struct sched_attr` up to `sched_period` (`SCHED_ATTR_SIZE_VER0`, 48 bytes), from `linux/sched/types.h`.
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: nice,
        sched_priority: 0,
        sched_runtime: slice.as_nanos() as u64,
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: `sched_setattr(0, attr, 0)` reads `attr.size` bytes of a live, initialised `repr(C)` struct laid out
    // as the kernel's and changes the calling thread's scheduling only; it touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) == 0 }
}

/// How often a worker thread hands the allocator's freed memory back at most (`collect_freed_memory`).
const COLLECT_EVERY: Duration = Duration::from_secs(1);

/// As a worker thread goes idle, at most every [`COLLECT_EVERY`]: lets mimalloc give the system what this thread's
/// heap freed. It returns freed pages only a few milliseconds after they are freed, and only when the thread that
/// freed them calls into it again, so a burst (a storm of handshakes waiting on the bus, each holding its request's
/// buffers) would otherwise stay in the process's memory while its threads sit idle.
#[allow(unsafe_code)]
fn collect_freed_memory() {
    thread_local! {
        static LAST: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    }
    let now = Instant::now();
    if LAST.get().is_some_and(|last| now.duration_since(last) < COLLECT_EVERY) {
        return;
    }
    LAST.set(Some(now));
    // SAFETY: `mi_collect` only walks and trims the calling thread's own heap; it takes no pointer.
    unsafe { libmimalloc_sys::mi_collect(false) };
}

/// How often the scheduling delay of the socket runtime is sampled.
const PROBE_EVERY: Duration = Duration::from_millis(250);

pub struct SocketRuntime {
    /// Taken at drop, so that it shuts down without blocking the async context that drops it.
    runtime: Option<Runtime>,
}

impl SocketRuntime {
    pub fn new() -> std::io::Result<SocketRuntime> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runtime = Builder::new_multi_thread()
            .worker_threads(cores)
            .thread_name("updraft-sockets")
            .on_thread_park(collect_freed_memory)
            .enable_all()
            .build()?;
        Ok(SocketRuntime { runtime: Some(runtime) })
    }

    pub fn handle(&self) -> Handle {
        self.runtime.as_ref().expect("running until dropped").handle().clone()
    }

    /// Samples, from the runtime serving HTTP, how long a task spawned on the socket runtime waits for its first
    /// poll (`updraft_mws_scheduling_delay_seconds`), and that runtime's queue of tasks not yet taken by a worker
    /// (`updraft_mws_run_queue_depth`): a fan-out that outgrows its cores shows there first. Stops with the runtime.
    pub fn spawn_probe(&self) {
        let sockets = self.handle();
        let delay = metrics::histogram!("updraft_mws_scheduling_delay_seconds");
        let depth = metrics::gauge!("updraft_mws_run_queue_depth");
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROBE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                depth.set(sockets.metrics().global_queue_depth() as f64);
                let spawned = Instant::now();
                let delay = delay.clone();
                // An error: the runtime is shutting down, and with it the application.
                if sockets.spawn(async move { delay.record(spawned.elapsed().as_secs_f64()) }).await.is_err() {
                    return;
                }
            }
        });
    }
}

impl Drop for SocketRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
