//! One socket's receive path: frames decoded in place in the read buffer, counted per read (not per message),
//! send times read back for latencies, pings and closes answered.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use updraft_ws::client::{self, Event, FrameDecoder};
use updraft_ws::{OP_CLOSE, OP_PONG, Violation};

use super::{RecvStats, Stamp, now_ns};
use crate::ws::{READ_BUF, WsConn};

/// What a reader does with each message's send time; settled once per socket.
#[derive(Clone, Copy)]
struct Reading {
    stamp: Stamp,
    /// Counts only messages that carry a send time (`RecvStats::stamped_only`).
    stamped_only: bool,
    /// Records latencies.
    track: bool,
    /// Whether each message's send time is read: to time it, or to tell ours from other clients'.
    parses: bool,
}

/// One pass of the decoder over the buffered bytes: what it counted, and the control frames to answer.
struct Batch {
    /// When the bytes were taken up (ns since start): every message's arrival time.
    arrived: u64,
    count: u64,
    bytes: u64,
    mismatched: u64,
    pong: Option<Vec<u8>>,
    close: Option<Vec<u8>>,
}

impl Reading {
    fn new(stats: &RecvStats, track: bool) -> Reading {
        let stamped_only = stats.stamped_only;
        Reading { stamp: stats.stamp, stamped_only, track, parses: track || stamped_only }
    }

    /// Decodes what `conn` holds and drops the decoded bytes from its buffer; messages of a size other than
    /// `expect` (when non-zero) are mismatched, and latencies go to `lat_batch`. Runs once per read on the receive
    /// path: inlined, so that being a function of its own costs nothing there.
    #[inline(always)]
    fn decode(
        self,
        conn: &mut WsConn,
        decoder: &mut FrameDecoder,
        expect: u64,
        lat_batch: &mut Vec<u64>,
    ) -> Result<Batch, Violation> {
        let Reading { stamp, stamped_only, track, parses } = self;
        let (mut count, mut bytes, mut mismatched) = (0u64, 0u64, 0u64);
        let mut pong = None;
        let mut close = None;
        let arrived = now_ns();
        let used = decoder.decode(&conn.buf[..conn.filled], |event| match event {
            Event::Message { prefix, len } => {
                let sent = if parses { stamp.parse(prefix) } else { None };
                if stamped_only && sent.is_none() {
                    return;
                }
                count += 1;
                bytes += len;
                if expect != 0 && len != expect {
                    mismatched += 1;
                }
                if track && let Some(sent) = sent {
                    lat_batch.push(arrived.saturating_sub(sent));
                }
            }
            Event::Ping(payload) => pong = Some(client::masked_control_frame(OP_PONG, payload)),
            Event::Pong => {}
            Event::Close(payload) => {
                close = Some(client::masked_control_frame(OP_CLOSE, &payload[..payload.len().min(2)]))
            }
        })?;
        conn.buf.copy_within(used..conn.filled, 0);
        conn.filled -= used;
        Ok(Batch { arrived, count, bytes, mismatched, pong, close })
    }
}

impl RecvStats {
    /// Adds a batch's messages to the shared counters (and its latencies, emptying `lat_batch`). Runs once per
    /// read on the receive path: inlined, like `Reading::decode`.
    #[inline(always)]
    fn add(&self, batch: &Batch, lat_batch: &mut Vec<u64>) {
        if batch.count > 0 {
            self.messages.fetch_add(batch.count, Ordering::Relaxed);
            self.payload_bytes.fetch_add(batch.bytes, Ordering::Relaxed);
            self.last_delivery_ns.fetch_max(batch.arrived, Ordering::Relaxed);
            if batch.mismatched > 0 {
                self.size_mismatches.fetch_add(batch.mismatched, Ordering::Relaxed);
            }
            if !lat_batch.is_empty()
                && let Some(all) = &self.latencies
            {
                all.lock().unwrap_or_else(|e| e.into_inner()).append(lat_batch);
            }
        }
    }
}

/// Receives until EOF, a server close, an error or shutdown. Counts messages,
/// answers pings, and records latencies when `track`.
pub(super) async fn read_loop(mut conn: WsConn, stats: &RecvStats, mut shutdown: watch::Receiver<bool>, track: bool) {
    let reading = Reading::new(stats, track);
    let mut decoder = FrameDecoder::new(if reading.parses { reading.stamp.capture() } else { 0 });
    // Registered once rather than per read: re-creating it each iteration
    // would touch the watch channel's waiter list on every read.
    let shutdown_signal = shutdown.changed();
    tokio::pin!(shutdown_signal);
    let mut lat_batch: Vec<u64> = Vec::new();
    loop {
        let batch = match reading.decode(&mut conn, &mut decoder, stats.expect_size, &mut lat_batch) {
            Ok(batch) => batch,
            Err(e) => {
                stats.read_errors.fetch_add(1, Ordering::Relaxed);
                stats.note_error(format!("frame error: {e:#}"));
                return;
            }
        };
        stats.add(&batch, &mut lat_batch);
        if let Some(pong) = batch.pong {
            stats.pings.fetch_add(1, Ordering::Relaxed);
            let _ = conn.stream.write_all(&pong).await;
        }
        if let Some(close) = batch.close {
            stats.closed_by_server.fetch_add(1, Ordering::Relaxed);
            let _ = conn.stream.write_all(&close).await;
            return;
        }
        if conn.filled == READ_BUF {
            stats.note_error("frame header does not fit the read buffer");
            return;
        }

        tokio::select! {
            biased;
            _ = &mut shutdown_signal => {
                close_gracefully(&mut conn).await;
                return;
            }
            read = conn.stream.read(&mut conn.buf[conn.filled..]) => match read {
                Ok(0) => {
                    stats.closed_by_server.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(n) => conn.filled += n,
                Err(e) => {
                    stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    stats.note_error(format!("read: {e}"));
                    return;
                }
            },
        }
    }
}

/// Client-initiated close (1000), then waits briefly for the server to
/// finish the closing handshake so the server, not us, holds TIME_WAIT.
async fn close_gracefully(conn: &mut WsConn) {
    let frame = client::masked_control_frame(OP_CLOSE, &1000u16.to_be_bytes());
    if conn.stream.write_all(&frame).await.is_err() {
        return;
    }
    let drain = async {
        let mut scratch = [0u8; 512];
        while matches!(conn.stream.read(&mut scratch).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), drain).await;
}
