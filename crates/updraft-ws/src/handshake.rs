//! The text of the opening handshake (RFC 6455 §4): the accept key both sides compute, the server's key
//! check, and the client's request and response check. The HTTP exchange itself is the caller's: the
//! server answers through its HTTP stack, the load generator over a socket it reads by hand.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(client_key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(client_key);
    sha.update(GUID);
    BASE64.encode(sha.finalize())
}

/// A valid key is the base64 encoding of 16 bytes.
pub fn is_valid_client_key(client_key: &[u8]) -> bool {
    matches!(BASE64.decode(client_key), Ok(raw) if raw.len() == 16)
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64-encoded.
pub fn client_key() -> String {
    BASE64.encode(rand::random::<[u8; 16]>())
}

/// The client's upgrade request for `path` (with its query) on `host`.
pub fn upgrade_request(path: &str, host: &str, key: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Why the server's answer to an upgrade request is not a valid upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeRefused {
    /// Any status but 101; the status line.
    Status(String),
    /// A missing or wrong `Sec-WebSocket-Accept`; the value given.
    AcceptKey(Option<String>),
}

impl std::fmt::Display for UpgradeRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpgradeRefused::Status(line) => write!(f, "upgrade refused: {line}"),
            UpgradeRefused::AcceptKey(accept) => write!(f, "bad Sec-WebSocket-Accept: {accept:?}"),
        }
    }
}

impl std::error::Error for UpgradeRefused {}

/// Checks the response head (status line and headers, up to the empty line) to a request sent with `key`.
pub fn check_upgrade_response(head: &str, key: &str) -> Result<(), UpgradeRefused> {
    let status_line = head.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) != Some("101") {
        return Err(UpgradeRefused::Status(status_line.to_owned()));
    }
    let accept = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-accept").then(|| value.trim())
    });
    if accept != Some(accept_key(key.as_bytes()).as_str()) {
        return Err(UpgradeRefused::AcceptKey(accept.map(str::to_owned)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(is_valid_client_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_client_key(b"short"));
        assert!(is_valid_client_key(client_key().as_bytes()));
    }

    #[test]
    fn client_side_of_the_handshake() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let request = upgrade_request("/?token=t", "gw:80", key);
        assert!(request.starts_with("GET /?token=t HTTP/1.1\r\nHost: gw:80\r\n"));
        assert!(request.contains("\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(request.ends_with("\r\n\r\n"));

        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                  sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(check_upgrade_response(ok, key), Ok(()));
        assert_eq!(
            check_upgrade_response("HTTP/1.1 404 Not Found\r\n\r\n", key),
            Err(UpgradeRefused::Status("HTTP/1.1 404 Not Found".into()))
        );
        let wrong = "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        assert_eq!(check_upgrade_response(wrong, key), Err(UpgradeRefused::AcceptKey(Some("nope".into()))));
    }
}
