//! The task behind one open WebSocket: writes queued frames, answers pings, keeps the peer alive.
//!
//! One hand-written poll loop instead of `select!` over futures, so that an idle socket's state is
//! a few hundred bytes: the reader state machine and a few flags. Reads go through a stack buffer,
//! the write buffer exists only while frames are in flight, there is no per-socket ping timer
//! (the hub's heartbeat flags sockets due for a ping), and a timer exists only while closing.

use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::socket::Socket;
use updraft_ws::{self as ws, Event, FrameReader, close_code};

/// Frames moved from the outbox per write: large enough to batch a burst into one syscall.
const MAX_BATCH: usize = 64 * 1024;
/// A peer flooding pings without reading loses its pongs beyond this much unwritten output.
const MAX_PENDING_CONTROL: usize = 16 * 1024;
/// Stack buffer per read; clients of a push gateway send little.
const READ_CHUNK: usize = 2048;

#[derive(Debug, Clone, Copy)]
pub struct ConnectionConfig {
    /// Every socket is pinged this often (see `Gateways::run_heartbeat`); a peer that has not
    /// answered by the next ping is dropped.
    pub ping_interval: Duration,
    /// Largest data message a client may send (it is read and discarded).
    pub max_client_message: u64,
}

/// How long to wait for the peer's close frame after sending ours.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// How the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// A close handshake completed; `code` is the one this side sent.
    Closed { code: u16, initiated_by_peer: bool },
    /// The peer vanished (EOF or I/O error) without a close handshake.
    Abnormal,
    /// The peer stopped answering pings.
    PingTimeout,
    /// Our close frame went out but the peer never answered it.
    CloseTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// Our close frame is queued; `peer_done` once the peer's close arrived or it can't send more.
    Closing {
        code: u16,
        by_peer: bool,
        peer_done: bool,
    },
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// The connection of `socket` over `io`; await it to serve the socket until it ends.
    /// `prefix` holds bytes the client sent right behind its handshake, already read by the
    /// HTTP server.
    pub fn new(io: S, prefix: Bytes, socket: Arc<Socket>, config: &ConnectionConfig) -> Connection<S> {
        let mut conn = Connection {
            io,
            socket,
            reader: FrameReader::new(config.max_client_message),
            out: None,
            flush_pending: false,
            phase: Phase::Open,
            awaiting_pong: false,
            close_timer: None,
        };
        if !prefix.is_empty() {
            conn.on_input(&mut prefix.to_vec());
        }
        conn
    }

    pub fn socket(&self) -> &Arc<Socket> {
        &self.socket
    }
}

/// A plain struct rather than an `async fn`: the future is exactly these fields, which matters
/// when hundreds of thousands of them sit idle.
impl<S: AsyncRead + AsyncWrite + Unpin> Future for Connection<S> {
    type Output = Ended;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended> {
        self.get_mut().poll_connection(cx)
    }
}

/// Opens and immediately closes a socket that has no right to exist (e.g. a bad token).
pub async fn reject<S>(mut io: S, code: u16, reason: &'static str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let mut frame = Vec::with_capacity(128);
    ws::put_close_frame(&mut frame, code, reason);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        io.write_all(&frame).await?;
        io.flush().await?;
        io.shutdown().await
    })
    .await;
}

pub struct Connection<S> {
    io: S,
    socket: Arc<Socket>,
    reader: FrameReader,
    /// Bytes being written; allocated only while frames are in flight.
    out: Option<Box<Outgoing>>,
    flush_pending: bool,
    phase: Phase,
    awaiting_pong: bool,
    close_timer: Option<Pin<Box<Sleep>>>,
}

#[derive(Default)]
struct Outgoing {
    buf: Vec<u8>,
    written: usize,
}

/// What one step of the poll loop did: `Continue(true)` it moved something (bytes read, queued or
/// written), so another round may find more; `Continue(false)` it had nothing to do or is waiting,
/// with a wakeup registered; `Break` the connection ended.
type Step = ControlFlow<Ended, bool>;

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Runs rounds of the steps until one ends the connection or a round moves nothing. Returning
    /// `Pending` is safe only then: every step that could move has registered a wakeup (the stream's
    /// read and write, the socket's waker, the close timer).
    fn poll_connection(&mut self, cx: &mut Context<'_>) -> Poll<Ended> {
        loop {
            match self.poll_round(cx) {
                ControlFlow::Break(ended) => return Poll::Ready(ended),
                ControlFlow::Continue(true) => (),
                ControlFlow::Continue(false) => {
                    self.offer_direct_if_idle();
                    return Poll::Pending;
                }
            }
        }
    }

    /// One round, in this order: read first, so that a close from the peer stops the outbox step
    /// (it runs only while open) from taking frames behind our close frame, and a pong goes out in
    /// this round's write; then see whether the connection is done. Every step runs even when an
    /// earlier one moved nothing, so that each one that waits registers its wakeup.
    #[inline]
    fn poll_round(&mut self, cx: &mut Context<'_>) -> Step {
        let mut progress = self.read_input(cx)?;
        progress |= self.take_outbox(cx)?;
        progress |= self.write_output(cx)?;
        self.flush_output(cx)?;
        self.check_finished(cx)?;
        ControlFlow::Continue(progress)
    }

    /// Reads one chunk from the peer and handles its frames. Through a stack buffer: an idle socket
    /// holds no read buffer. EOF while open is an abnormal end; while closing, the peer is done.
    #[inline]
    fn read_input(&mut self, cx: &mut Context<'_>) -> Step {
        if !self.reading() {
            return ControlFlow::Continue(false);
        }
        let mut chunk = [0u8; READ_CHUNK];
        let mut buf = ReadBuf::new(&mut chunk);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                if n == 0 {
                    match &mut self.phase {
                        Phase::Open => return ControlFlow::Break(Ended::Abnormal),
                        Phase::Closing { peer_done, .. } => *peer_done = true,
                    }
                } else {
                    self.on_input(&mut chunk[..n]);
                }
                ControlFlow::Continue(true)
            }
            Poll::Ready(Err(_)) => ControlFlow::Break(Ended::Abnormal),
            Poll::Pending => ControlFlow::Continue(false),
        }
    }

    /// While open: queues a due ping, takes the socket's queued frames and starts a requested close.
    /// Frames are taken only once the last batch is out: a slow reader's frames stay in the socket's
    /// bounded outbox, whose overflow drops it, instead of piling up here.
    #[inline]
    fn take_outbox(&mut self, cx: &mut Context<'_>) -> Step {
        if self.phase != Phase::Open {
            return ControlFlow::Continue(false);
        }
        // Register before looking, so a frame queued right after the look wakes us.
        self.socket.register(cx.waker());
        let pinged = self.ping_if_due()?;
        let before = self.unwritten();
        let close = if before == 0 {
            let mut buf = Vec::new();
            let close = self.socket.drain_into(&mut buf, MAX_BATCH);
            if !buf.is_empty() {
                self.out = Some(Box::new(Outgoing { buf, written: 0 }));
            }
            close
        } else {
            // Still writing: only a close request matters now. A peer that stopped
            // reading never takes our close frame; the close timeout then ends it.
            self.socket.close_requested()
        };
        if let Some(close) = close {
            self.start_close(close.code, close.reason, false);
        }
        ControlFlow::Continue(pinged | (self.unwritten() != before))
    }

    /// Answers the hub's heartbeat with a ping, or ends the connection when the last one went
    /// unanswered.
    #[inline]
    fn ping_if_due(&mut self) -> Step {
        if !self.socket.take_heartbeat() {
            return ControlFlow::Continue(false);
        }
        if self.awaiting_pong {
            return ControlFlow::Break(Ended::PingTimeout);
        }
        ws::put_frame(self.out_buf(), ws::OP_PING, b"");
        self.awaiting_pong = true;
        ControlFlow::Continue(true)
    }

    /// Writes what is left of the write buffer; once it is all out, frees it and owes a flush.
    #[inline]
    fn write_output(&mut self, cx: &mut Context<'_>) -> Step {
        let Some(out) = &mut self.out else { return ControlFlow::Continue(false) };
        match Pin::new(&mut self.io).poll_write(cx, &out.buf[out.written..]) {
            Poll::Ready(Ok(0) | Err(_)) => ControlFlow::Break(Ended::Abnormal),
            Poll::Ready(Ok(n)) => {
                out.written += n;
                if out.written == out.buf.len() {
                    // Keep no buffer between bursts: idle sockets must stay small.
                    self.out = None;
                    self.flush_pending = true;
                }
                ControlFlow::Continue(true)
            }
            Poll::Pending => ControlFlow::Continue(false),
        }
    }

    /// Flushes after a completed write (a TLS stream may hold bytes until then). Not progress by
    /// itself: what waits on it (the end of a close, the idle offer) is looked at later this round.
    #[inline]
    fn flush_output(&mut self, cx: &mut Context<'_>) -> ControlFlow<Ended> {
        if self.flush_pending {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flush_pending = false,
                Poll::Ready(Err(_)) => return ControlFlow::Break(Ended::Abnormal),
                Poll::Pending => (),
            }
        }
        ControlFlow::Continue(())
    }

    /// Ends the connection once the close handshake is complete and our close frame is out, or
    /// when the peer took too long to answer our close (polling the timer registers its wakeup).
    #[inline]
    fn check_finished(&mut self, cx: &mut Context<'_>) -> ControlFlow<Ended> {
        if let Phase::Closing { code, by_peer, peer_done: true } = self.phase
            && self.out.is_none()
            && !self.flush_pending
        {
            // Best effort: the close handshake is complete whatever shutdown says.
            let _ = Pin::new(&mut self.io).poll_shutdown(cx);
            return ControlFlow::Break(Ended::Closed { code, initiated_by_peer: by_peer });
        }
        if let Some(timer) = &mut self.close_timer
            && timer.as_mut().poll(cx).is_ready()
        {
            return ControlFlow::Break(Ended::CloseTimeout);
        }
        ControlFlow::Continue(())
    }

    /// Before going idle: the fan-out may write our frames itself until we have bytes of our own.
    #[inline]
    fn offer_direct_if_idle(&self) {
        if self.phase == Phase::Open && self.out.is_none() && !self.flush_pending {
            self.socket.offer_direct();
        }
    }

    fn reading(&self) -> bool {
        !matches!(self.phase, Phase::Closing { peer_done: true, .. })
    }

    fn on_input(&mut self, data: &mut [u8]) {
        // A pong may follow: take writing back from the fan-out first.
        self.take_over();
        // Any frame proves the peer is alive.
        self.awaiting_pong = false;
        let mut peer_close = None;
        let pending = self.unwritten();
        let out = &mut self.out;
        let res = self.reader.feed(data, &mut |event| match event {
            Event::Ping(payload) if pending < MAX_PENDING_CONTROL => {
                ws::put_frame(&mut out.get_or_insert_with(Default::default).buf, ws::OP_PONG, payload)
            }
            Event::Close { code, .. } => peer_close = Some(code.unwrap_or(close_code::NORMAL)),
            Event::Ping(_) | Event::Pong | Event::Message => (),
        });
        match res {
            Err(violation) => {
                self.start_close(violation.code, violation.reason, false);
                self.mark_peer_done();
            }
            Ok(true) => {
                let code = peer_close.unwrap_or(close_code::NORMAL);
                self.start_close(code, "", true);
                self.mark_peer_done();
            }
            Ok(false) => (),
        }
    }

    fn start_close(&mut self, code: u16, reason: &str, by_peer: bool) {
        if self.phase != Phase::Open {
            return;
        }
        ws::put_close_frame(self.out_buf(), code, reason);
        self.phase = Phase::Closing { code, by_peer, peer_done: false };
        self.close_timer = Some(Box::pin(tokio::time::sleep(CLOSE_TIMEOUT)));
    }

    fn out_buf(&mut self) -> &mut Vec<u8> {
        self.take_over();
        &mut self.out.get_or_insert_with(Default::default).buf
    }

    /// Takes writing back from the fan-out before adding bytes of our own, so that a frame it cut short (the peer's
    /// window was full) goes out whole, ahead of them. With bytes in flight, writing is already ours.
    fn take_over(&mut self) {
        if self.out.is_none() {
            let mut buf = Vec::new();
            // A pending close is returned again to the loop, which starts it.
            let _ = self.socket.drain_into(&mut buf, MAX_BATCH);
            if !buf.is_empty() {
                self.out = Some(Box::new(Outgoing { buf, written: 0 }));
            }
        }
    }

    fn unwritten(&self) -> usize {
        self.out.as_ref().map_or(0, |out| out.buf.len() - out.written)
    }

    fn mark_peer_done(&mut self) {
        if let Phase::Closing { peer_done, .. } = &mut self.phase {
            *peer_done = true;
        }
    }
}

impl<S> Drop for Connection<S> {
    fn drop(&mut self) {
        // Before `io` (and the descriptor the fan-out may write to) is dropped.
        self.socket.revoke_direct();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames written by the fan-out (`Socket::flush_direct`) and by the task (after a cut-short write, and with
    /// pongs of its own in between) reach the peer whole and in order, while the peer reads slowly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_written_by_the_fan_out_and_by_the_task_arrive_whole_and_in_order() {
        use std::os::fd::AsRawFd;

        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        use crate::hub::{Hub, Receivers};
        use crate::socket::{QueueLimits, SocketId};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let socket = Arc::new(Socket::new(SocketId::random(), Box::new([])));
        socket.allow_direct_writes(server.as_raw_fd());
        let hub = Arc::new(Hub::new(QueueLimits { max_bytes: 1 << 30, max_frames: 1 << 20 }));
        hub.insert(socket.clone());
        let config = ConnectionConfig { ping_interval: Duration::from_secs(60), max_client_message: 1 << 20 };
        let task = tokio::spawn(Connection::new(server, Bytes::new(), socket.clone(), &config));
        tokio::time::sleep(Duration::from_millis(50)).await;

        // About 40 MB: more than the socket buffers hold, so writes are cut short and fall back to the task.
        const FRAMES: usize = 10_000;
        let publisher = {
            let hub = hub.clone();
            tokio::task::spawn_blocking(move || {
                let everyone = Receivers { everyone: true, ..Receivers::default() };
                for i in 0..FRAMES {
                    let mut payload = format!("{i:08}").into_bytes();
                    payload.resize(4000 + i % 97, b'a' + (i % 26) as u8);
                    assert_eq!(hub.publish(&payload, &everyone).delivered, 1);
                }
            })
        };
        let mut buf = Vec::new();
        let mut next = 0;
        let mut pongs = 0;
        let mut chunk = vec![0u8; 64 * 1024];
        while next < FRAMES {
            if next % 1000 == 0 {
                // A masked, empty ping: the task answers it between frames.
                client.write_all(&[0x89, 0x80, 1, 2, 3, 4]).await.unwrap();
            }
            let n = tokio::time::timeout(Duration::from_secs(20), client.read(&mut chunk)).await.unwrap().unwrap();
            assert!(n > 0, "the server closed after {next} frames");
            buf.extend_from_slice(&chunk[..n]);
            loop {
                if buf.len() < 2 {
                    break;
                }
                let (len, header) = match buf[1] {
                    126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                    126 => break,
                    127 => panic!("no frame here is that large"),
                    n => (n as usize, 2),
                };
                if buf.len() < header + len {
                    break;
                }
                let frame: Vec<u8> = buf.drain(..header + len).collect();
                match frame[0] {
                    0x81 => {
                        let payload = &frame[header..];
                        assert_eq!(&payload[..8], format!("{next:08}").as_bytes(), "frame {next} out of order");
                        assert_eq!(payload.len(), 4000 + next % 97);
                        assert!(payload[8..].iter().all(|&b| b == b'a' + (next % 26) as u8), "frame {next} mixed");
                        next += 1;
                    }
                    0x8A => pongs += 1,
                    other => panic!("unexpected frame {other:#x} after {next} frames"),
                }
            }
            if next % 500 == 0 {
                // Read slowly now and then, so the peer's window fills.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        publisher.await.unwrap();
        assert!(pongs > 0, "the task answered no ping");
        drop(client);
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap(), Ended::Abnormal);
    }

    /// Hundreds of thousands of these sit idle. Within 144 bytes, the connection plus the
    /// caller's gateway handle fit tokio's smallest task cell (256 bytes, 128-byte aligned).
    #[test]
    fn an_idle_connection_stays_small() {
        let size = std::mem::size_of::<Connection<tokio::net::TcpStream>>();
        assert!(size <= 144, "Connection<TcpStream> grew to {size} bytes");
    }
}
