//! The load generator's WebSocket connections: TCP connects from rotating loopback source addresses and the
//! opening handshake, read by hand into the buffer the frame loop then keeps using. The framing itself and the
//! handshake's text are `updraft_ws`'s (its header says why not a WebSocket library).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use updraft_ws::client::MAX_CAPTURE;
use updraft_ws::handshake;

/// Per-connection read buffer. Large enough to drain many small frames per
/// read syscall, small enough that 19k of them stay under ~80 MB.
pub(crate) const READ_BUF: usize = 4096;

/// How many leading payload bytes the decoder keeps for the consumer when
/// the stamp leads the payload (the latency scenario's ASCII timestamp needs
/// at most 20).
pub(crate) const PREFIX_LEN: usize = 32;

/// Leading payload bytes kept when the stamp sits somewhere inside a JSON
/// frame (EDS change frames, LiveQuery events): enough for their whole object.
/// Must stay well below `READ_BUF`, since the captured bytes must be contiguous.
pub(crate) const JSON_PREFIX_LEN: usize = 1024;

// Kept prefixes are taken from the read buffer in one piece, behind a header of up to 10 bytes.
const _: () = assert!(PREFIX_LEN <= JSON_PREFIX_LEN && JSON_PREFIX_LEN <= MAX_CAPTURE && MAX_CAPTURE + 10 <= READ_BUF);

/// Parsed `ws://host:port/path?query` URI.
#[derive(Debug, Clone)]
pub(crate) struct WsUri {
    pub host_header: String,
    pub addr: Option<SocketAddr>,
    pub path: String,
}

impl WsUri {
    pub(crate) fn parse(uri: &str) -> Result<Self> {
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
    pub(crate) fn token(&self) -> Option<&str> {
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
pub(crate) async fn connect_tcp(addr: SocketAddr) -> Result<TcpStream> {
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
pub(crate) struct WsConn {
    pub stream: TcpStream,
    pub buf: Box<[u8; READ_BUF]>,
    pub filled: usize,
}

/// Performs the opening handshake (RFC 6455 §4) by hand.
pub(crate) async fn handshake(uri: &WsUri, fallback: SocketAddr) -> Result<WsConn> {
    let addr = uri.addr.unwrap_or(fallback);
    let mut stream = connect_tcp(addr).await?;
    let key = handshake::client_key();
    stream.write_all(handshake::upgrade_request(&uri.path, &uri.host_header, &key).as_bytes()).await?;

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
    handshake::check_upgrade_response(head, &key)?;

    // Frames may already have arrived behind the 101 response.
    buf.copy_within(head_end..filled, 0);
    Ok(WsConn { stream, buf, filled: filled - head_end })
}

pub(crate) fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

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
