//! Minimal WebSocket client: hand-rolled upgrade handshake and a streaming
//! decoder for unmasked server frames.
//!
//! Why not a WebSocket crate: the load generator must receive ~1M messages/s
//! on one core while holding ~19k connections. Counting frames straight out of
//! a small read buffer (never assembling payloads) is far cheaper than a
//! general-purpose client that allocates per message.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Per-connection read buffer. Large enough to drain many small frames per
/// read syscall, small enough that 19k of them stay under ~80 MB.
pub const READ_BUF: usize = 4096;

/// How many leading payload bytes the decoder keeps for the consumer when
/// the stamp leads the payload (the latency scenario's ASCII timestamp needs
/// at most 20).
pub const PREFIX_LEN: usize = 32;

/// Leading payload bytes kept when the stamp sits somewhere inside a JSON
/// frame (EDS change frames, LiveQuery events): enough for their whole object.
/// Must stay well below `READ_BUF`, since the captured bytes must be contiguous.
pub const JSON_PREFIX_LEN: usize = 1024;

const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// What the decoder reports to its consumer.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete data message. `prefix` holds its first bytes (only when
    /// prefix capture is enabled, else empty); `len` is the total payload size.
    Message {
        prefix: &'a [u8],
        len: u64,
    },
    Ping(&'a [u8]),
    Pong,
    Close(&'a [u8]),
}

/// Streaming decoder for server→client frames.
///
/// Data payloads are skipped rather than buffered, so a message may span any
/// number of reads. Only control frames (≤125 bytes) and the optional prefix
/// must be contiguous, which `READ_BUF` always allows.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// Leading payload bytes to keep per message (0: none).
    capture: usize,
    /// Payload bytes of the current frame still to be discarded.
    skip: u64,
    /// Whether the frame being skipped ends its message.
    skip_ends_message: bool,
    /// Inside a fragmented message (saw a non-FIN data frame).
    in_message: bool,
    msg_len: u64,
    /// Allocated only when capturing, so idle sockets stay small.
    prefix: Vec<u8>,
}

impl FrameDecoder {
    /// Keeps the first `capture` payload bytes of each message (at most
    /// `READ_BUF / 2`); 0 keeps none.
    pub fn new(capture: usize) -> Self {
        let capture = capture.min(READ_BUF / 2);
        Self { capture, prefix: Vec::with_capacity(capture), ..Self::default() }
    }

    /// True between messages (not inside a frame or a fragmented message).
    pub fn at_boundary(&self) -> bool {
        self.skip == 0 && !self.in_message
    }

    /// Decodes as many events as `buf` allows and returns how many bytes were
    /// consumed; the caller must keep `buf[consumed..]` and append to it.
    pub fn decode(&mut self, buf: &[u8], mut on_event: impl FnMut(Event<'_>)) -> Result<usize> {
        let mut pos = 0;
        loop {
            if self.skip > 0 {
                let avail = (buf.len() - pos) as u64;
                let n = self.skip.min(avail);
                pos += n as usize;
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(pos);
                }
                if self.skip_ends_message {
                    self.finish_message(&mut on_event);
                }
                continue;
            }

            let rest = &buf[pos..];
            let Some((header, fin, opcode, len)) = parse_header(rest)? else {
                return Ok(pos);
            };
            match opcode {
                OP_CLOSE | OP_PING | OP_PONG => {
                    ensure!(fin && len <= 125, "invalid control frame");
                    let total = header + len as usize;
                    if rest.len() < total {
                        return Ok(pos);
                    }
                    let payload = &rest[header..total];
                    on_event(match opcode {
                        OP_PING => Event::Ping(payload),
                        OP_PONG => Event::Pong,
                        _ => Event::Close(payload),
                    });
                    pos += total;
                }
                OP_TEXT | OP_BINARY | OP_CONT => {
                    let starts = opcode != OP_CONT;
                    ensure!(starts != self.in_message, "unexpected frame opcode {opcode}");
                    if starts {
                        // Wait for the prefix to be contiguous before consuming
                        // the header, so it never has to be stitched together.
                        let want = len.min(self.capture as u64) as usize;
                        if rest.len() < header + want {
                            return Ok(pos);
                        }
                        self.prefix.clear();
                        self.prefix.extend_from_slice(&rest[header..header + want]);
                        self.msg_len = 0;
                    }
                    self.in_message = !fin;
                    self.msg_len += len;
                    pos += header;
                    self.skip = len;
                    self.skip_ends_message = fin;
                    if len == 0 && fin {
                        self.finish_message(&mut on_event);
                    }
                }
                other => bail!("reserved opcode {other}"),
            }
        }
    }

    fn finish_message(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        self.skip_ends_message = false;
        on_event(Event::Message { prefix: &self.prefix, len: self.msg_len });
    }
}

/// Returns `(header_len, fin, opcode, payload_len)` once the header is complete.
fn parse_header(b: &[u8]) -> Result<Option<(usize, bool, u8, u64)>> {
    if b.len() < 2 {
        return Ok(None);
    }
    let fin = b[0] & 0x80 != 0;
    ensure!(b[0] & 0x70 == 0, "RSV bits set (no extension was negotiated)");
    ensure!(b[1] & 0x80 == 0, "server frame is masked");
    let opcode = b[0] & 0x0F;
    Ok(match b[1] & 0x7F {
        126 if b.len() < 4 => None,
        126 => Some((4, fin, opcode, u64::from(u16::from_be_bytes([b[2], b[3]])))),
        127 if b.len() < 10 => None,
        127 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&b[2..10]);
            Some((10, fin, opcode, u64::from_be_bytes(n)))
        }
        n => Some((2, fin, opcode, u64::from(n))),
    })
}

/// Builds a masked client frame (clients must mask, RFC 6455 §5.3). Only used
/// for small control frames, so the 7-bit length form suffices.
pub fn masked_control_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(125)];
    let mask: [u8; 4] = rand::random();
    let mut out = Vec::with_capacity(6 + payload.len());
    out.push(0x80 | opcode);
    out.push(0x80 | payload.len() as u8);
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Builds a masked, unfragmented client frame of any size.
pub fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask: [u8; 4] = rand::random();
    let mut out = Vec::with_capacity(14 + payload.len());
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Parsed `ws://host:port/path?query` URI.
#[derive(Debug, Clone)]
pub struct WsUri {
    pub host_header: String,
    pub addr: Option<SocketAddr>,
    pub path: String,
}

impl WsUri {
    pub fn parse(uri: &str) -> Result<Self> {
        let rest = uri.strip_prefix("ws://").with_context(|| format!("only ws:// URIs are supported: {uri}"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Self { host_header: authority.to_string(), addr: with_port.parse().ok(), path })
    }

    /// The `token` query parameter (the socket id in MWS).
    pub fn token(&self) -> Option<&str> {
        let query = self.path.split_once('?')?.1;
        query.split('&').find_map(|kv| kv.strip_prefix("token="))
    }
}

/// Rotates client source addresses over 127.0.X.Y so no single address runs
/// out of ephemeral ports (~28k each, and TIME_WAIT from earlier runs).
static NEXT_SOURCE: AtomicUsize = AtomicUsize::new(0);
const SOCKETS_PER_SOURCE: usize = 200;

fn next_source_ip() -> Ipv4Addr {
    let slot = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) / SOCKETS_PER_SOURCE;
    let x = 1 + (slot / 250) % 250;
    let y = 1 + slot % 250;
    Ipv4Addr::new(127, 0, x as u8, y as u8)
}

/// Opens a TCP connection; loopback targets get a rotating source address.
pub async fn connect_tcp(addr: SocketAddr) -> Result<TcpStream> {
    let socket = match addr.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => {
            let s = TcpSocket::new_v4()?;
            s.set_reuseaddr(true)?;
            s.bind(SocketAddr::new(IpAddr::V4(next_source_ip()), 0))?;
            s
        }
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    let stream = socket.connect(addr).await.with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// An upgraded connection plus whatever bytes followed the 101 response.
pub struct WsConn {
    pub stream: TcpStream,
    pub buf: Box<[u8; READ_BUF]>,
    pub filled: usize,
}

/// Performs the opening handshake (RFC 6455 §4) by hand.
pub async fn handshake(uri: &WsUri, fallback: SocketAddr) -> Result<WsConn> {
    let addr = uri.addr.unwrap_or(fallback);
    let mut stream = connect_tcp(addr).await?;
    let key = BASE64.encode(rand::random::<[u8; 16]>());
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        uri.path, uri.host_header
    );
    stream.write_all(request.as_bytes()).await?;

    let mut buf = Box::new([0u8; READ_BUF]);
    let mut filled = 0;
    let head_end = loop {
        ensure!(filled < READ_BUF, "handshake response too large");
        let n = stream.read(&mut buf[filled..]).await?;
        ensure!(n > 0, "connection closed during handshake");
        filled += n;
        if let Some(i) = find_subslice(&buf[..filled], b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("handshake response not UTF-8")?;
    let status_line = head.lines().next().unwrap_or_default();
    ensure!(status_line.split_whitespace().nth(1) == Some("101"), "upgrade refused: {status_line}");
    let expected = accept_key(&key);
    let accept = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-accept").then(|| value.trim())
    });
    ensure!(accept == Some(expected.as_str()), "bad Sec-WebSocket-Accept: {accept:?}");

    // Frames may already have arrived behind the 101 response.
    buf.copy_within(head_end..filled, 0);
    Ok(WsConn { stream, buf, filled: filled - head_end })
}

/// `Sec-WebSocket-Accept` value the server must return for `key`.
fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WS_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

pub fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n @ 0..=125 => out.push(n as u8),
            n @ 126..=0xFFFF => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    /// Feeds `wire` in chunks of `chunk` bytes, the way reads would deliver it.
    fn feed(dec: &mut FrameDecoder, wire: &[u8], chunk: usize) -> Vec<String> {
        let mut events = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for piece in wire.chunks(chunk) {
            pending.extend_from_slice(piece);
            let used = dec
                .decode(&pending, |e| {
                    events.push(match e {
                        Event::Message { prefix, len } => {
                            format!("msg {len} {}", String::from_utf8_lossy(prefix))
                        }
                        Event::Ping(p) => format!("ping {}", String::from_utf8_lossy(p)),
                        Event::Pong => "pong".into(),
                        Event::Close(p) => format!("close {p:?}"),
                    })
                })
                .unwrap();
            pending.drain(..used);
        }
        assert!(pending.is_empty(), "leftover bytes: {pending:?}");
        events
    }

    #[test]
    fn frames_split_across_reads() {
        let mut wire = frame(true, OP_TEXT, b"hello");
        wire.extend(frame(true, OP_PING, b"p1"));
        wire.extend(frame(true, OP_TEXT, b""));
        wire.extend(frame(true, OP_TEXT, b"123456789 padding"));
        for chunk in [1, 2, 3, 7, 64] {
            let mut dec = FrameDecoder::new(PREFIX_LEN);
            assert_eq!(
                feed(&mut dec, &wire, chunk),
                ["msg 5 hello", "ping p1", "msg 0 ", "msg 17 123456789 padding"],
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn extended_lengths() {
        let medium = vec![b'a'; 300];
        let large = vec![b'b'; 70_000];
        let mut wire = frame(true, OP_TEXT, &medium);
        wire.extend(frame(true, OP_BINARY, &large));
        wire.extend(frame(true, OP_TEXT, b"x"));
        let mut dec = FrameDecoder::new(PREFIX_LEN);
        let events = feed(&mut dec, &wire, 1000);
        assert_eq!(events[0], format!("msg 300 {}", "a".repeat(PREFIX_LEN)));
        assert_eq!(events[1], format!("msg 70000 {}", "b".repeat(PREFIX_LEN)));
        assert_eq!(events[2], "msg 1 x");
        // The 64-bit form, header only: a 2^32+1 byte frame is skipped lazily.
        let mut dec = FrameDecoder::new(0);
        let mut hdr = vec![0x81, 127];
        hdr.extend_from_slice(&((1u64 << 32) + 1).to_be_bytes());
        let mut n = 0;
        assert_eq!(dec.decode(&hdr, |_| n += 1).unwrap(), 10);
        assert_eq!((n, dec.skip), (0, (1u64 << 32) + 1));
    }

    #[test]
    fn fragmented_message_counts_once() {
        let mut wire = frame(false, OP_TEXT, b"123");
        wire.extend(frame(true, OP_PING, b""));
        wire.extend(frame(false, OP_CONT, b"45"));
        wire.extend(frame(true, OP_CONT, b"6"));
        let mut dec = FrameDecoder::new(PREFIX_LEN);
        assert_eq!(feed(&mut dec, &wire, 2), ["ping ", "msg 6 123"]);
    }

    #[test]
    fn ping_gets_masked_pong() {
        let wire = frame(true, OP_PING, b"heartbeat");
        let mut dec = FrameDecoder::new(0);
        let mut pong = None;
        dec.decode(&wire, |e| {
            if let Event::Ping(p) = e {
                pong = Some(masked_control_frame(OP_PONG, p));
            }
        })
        .unwrap();
        let pong = pong.expect("ping decoded");
        assert_eq!(pong[0], 0x80 | OP_PONG);
        assert_eq!(pong[1], 0x80 | 9, "mask bit and length");
        let mask = &pong[2..6];
        let unmasked: Vec<u8> = pong[6..].iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
        assert_eq!(unmasked, b"heartbeat");
    }

    #[test]
    fn long_prefix_capture_and_masked_frames() {
        let body = format!("{{\"meta\":{{}},\"object\":{{\"title\":\"lg:42:7\"}}}}{}", " ".repeat(200));
        let wire = frame(true, OP_TEXT, body.as_bytes());
        let mut dec = FrameDecoder::new(JSON_PREFIX_LEN);
        let events = feed(&mut dec, &wire, 50);
        assert_eq!(events, [format!("msg {} {body}", body.len())]);
        assert!(dec.at_boundary());

        let payload = vec![b'z'; 300];
        let masked = masked_frame(OP_TEXT, &payload);
        assert_eq!((masked[0], masked[1]), (0x80 | OP_TEXT, 0x80 | 126));
        assert_eq!(u16::from_be_bytes([masked[2], masked[3]]), 300);
        let mask = &masked[4..8];
        assert!(masked[8..].iter().enumerate().all(|(i, b)| b ^ mask[i % 4] == b'z'));
    }

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn rejects_masked_server_frames() {
        let mut dec = FrameDecoder::new(0);
        assert!(dec.decode(&[0x81, 0x81, 0, 0, 0, 0, b'x'], |_| {}).is_err());
    }

    #[test]
    fn parses_uri_and_token() {
        let uri = WsUri::parse("ws://127.0.0.1:18090/?token=abc123").unwrap();
        assert_eq!(uri.addr, Some("127.0.0.1:18090".parse().unwrap()));
        assert_eq!(uri.path, "/?token=abc123");
        assert_eq!(uri.token(), Some("abc123"));
        let uri = WsUri::parse("ws://gw.example?token=t").unwrap();
        assert_eq!((uri.addr, uri.path.as_str()), (None, "/?token=t"));
    }
}
