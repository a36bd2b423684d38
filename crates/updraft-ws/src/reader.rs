//! The server's reader of client frames (RFC 6455 §5): a streaming state machine fed whatever each read
//! returned, holding no payload buffer (see the crate's header for why).
//!
//! It checks as it goes what a server must refuse: unmasked frames, reserved bits and opcodes, long or
//! fragmented control frames, continuation out of order, invalid UTF-8 in text (as soon as a bad byte
//! arrives), invalid close payloads, and messages over the caller's limit. Each refusal carries the close
//! code to send.

use crate::{OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, close_code};

/// What the reader saw that the connection must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Ping(&'a [u8]),
    Pong,
    /// The peer's close; `code` is absent for an empty close payload.
    Close {
        code: Option<u16>,
        reason: &'a str,
    },
    /// A complete data message went by (its content is ignored by a push gateway).
    Message,
}

/// A protocol violation: the connection closes with this code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub code: u16,
    pub reason: &'static str,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reason, self.code)
    }
}

impl std::error::Error for Violation {}

pub(crate) const fn violation(code: u16, reason: &'static str) -> Violation {
    Violation { code, reason }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Header,
    Payload,
}

/// A control frame's payload (at most 125 bytes, checked before any is stored).
struct ControlPayload {
    bytes: [u8; 125],
    len: u8,
}

impl Default for ControlPayload {
    fn default() -> ControlPayload {
        ControlPayload { bytes: [0; 125], len: 0 }
    }
}

impl ControlPayload {
    fn extend(&mut self, chunk: &[u8]) {
        let start = self.len as usize;
        self.bytes[start..start + chunk.len()].copy_from_slice(chunk);
        self.len += chunk.len() as u8;
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// Incremental reader of client frames.
pub struct FrameReader {
    max_message: u64,
    stage: Stage,
    header: [u8; 14],
    header_len: u8,
    opcode: u8,
    fin: bool,
    mask: [u8; 4],
    mask_idx: u8,
    remaining: u64,
    /// Payload of the control frame being read; no allocation between control frames.
    control: Option<Box<ControlPayload>>,
    /// Opcode of the data message in progress (for continuation frames).
    message: Option<u8>,
    message_len: u64,
    utf8_tail: [u8; 4],
    utf8_tail_len: u8,
}

impl FrameReader {
    pub fn new(max_message: u64) -> FrameReader {
        FrameReader {
            max_message,
            stage: Stage::Header,
            header: [0; 14],
            header_len: 0,
            opcode: 0,
            fin: false,
            mask: [0; 4],
            mask_idx: 0,
            remaining: 0,
            control: None,
            message: None,
            message_len: 0,
            utf8_tail: [0; 4],
            utf8_tail_len: 0,
        }
    }

    /// Consumes `data` (unmasking it in place) and reports events through `on_event`.
    /// Stops at the first close frame: whatever follows it is not read.
    pub fn feed(&mut self, mut data: &mut [u8], on_event: &mut dyn FnMut(Event<'_>)) -> Result<bool, Violation> {
        while !data.is_empty() {
            match self.stage {
                Stage::Header => {
                    let need = self.header_need();
                    let take = (need - self.header_len as usize).min(data.len());
                    let (head, rest) = data.split_at_mut(take);
                    let start = self.header_len as usize;
                    self.header[start..start + take].copy_from_slice(head);
                    self.header_len += take as u8;
                    data = rest;
                    if self.header_len as usize == self.header_need() {
                        self.start_frame()?;
                        if self.remaining == 0 && self.finish_frame(on_event)? {
                            return Ok(true);
                        }
                    }
                }
                Stage::Payload => {
                    let take = (self.remaining.min(data.len() as u64)) as usize;
                    let (chunk, rest) = data.split_at_mut(take);
                    data = rest;
                    self.unmask(chunk);
                    self.remaining -= take as u64;
                    if self.opcode >= OP_CLOSE {
                        self.control.get_or_insert_with(Default::default).extend(chunk);
                    } else if self.message == Some(OP_TEXT) {
                        self.check_utf8(chunk)?;
                    }
                    if self.remaining == 0 && self.finish_frame(on_event)? {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// Bytes of header needed, given what has arrived so far.
    fn header_need(&self) -> usize {
        if self.header_len < 2 {
            return 2;
        }
        let len_bytes = match self.header[1] & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        // An unmasked frame is refused as soon as its first two bytes are in.
        let mask_bytes = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        2 + len_bytes + mask_bytes
    }

    fn start_frame(&mut self) -> Result<(), Violation> {
        let h = self.header;
        let fin = h[0] & 0x80 != 0;
        if h[0] & 0x70 != 0 {
            return Err(violation(close_code::PROTOCOL_ERROR, "reserved bits set"));
        }
        if h[1] & 0x80 == 0 {
            return Err(violation(close_code::PROTOCOL_ERROR, "client frames must be masked"));
        }
        let opcode = h[0] & 0x0F;
        let (len, mask_at) = match h[1] & 0x7F {
            126 => (u16::from_be_bytes([h[2], h[3]]) as u64, 4),
            127 => {
                let len = u64::from_be_bytes(h[2..10].try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(violation(close_code::PROTOCOL_ERROR, "invalid frame length"));
                }
                (len, 10)
            }
            n => (n as u64, 2),
        };
        match opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !fin || len > 125 {
                    return Err(violation(close_code::PROTOCOL_ERROR, "invalid control frame"));
                }
            }
            OP_TEXT | OP_BINARY => {
                if self.message.is_some() {
                    return Err(violation(close_code::PROTOCOL_ERROR, "expected continuation frame"));
                }
                self.message = Some(opcode);
                self.message_len = 0;
            }
            OP_CONTINUATION => {
                if self.message.is_none() {
                    return Err(violation(close_code::PROTOCOL_ERROR, "unexpected continuation frame"));
                }
            }
            _ => return Err(violation(close_code::PROTOCOL_ERROR, "unknown opcode")),
        }
        if opcode < OP_CLOSE {
            self.message_len = self.message_len.saturating_add(len);
            if self.message_len > self.max_message {
                return Err(violation(close_code::MESSAGE_TOO_BIG, "message too big"));
            }
        }
        self.mask.copy_from_slice(&h[mask_at..mask_at + 4]);
        self.mask_idx = 0;
        self.opcode = opcode;
        self.fin = fin;
        self.remaining = len;
        self.control = None;
        self.stage = Stage::Payload;
        Ok(())
    }

    fn unmask(&mut self, chunk: &mut [u8]) {
        let mut idx = self.mask_idx as usize;
        for byte in chunk.iter_mut() {
            *byte ^= self.mask[idx & 3];
            idx += 1;
        }
        self.mask_idx = (idx & 3) as u8;
    }

    /// Validates text incrementally: a character split across reads is kept in `utf8_tail`.
    fn check_utf8(&mut self, mut chunk: &[u8]) -> Result<(), Violation> {
        let invalid = violation(close_code::INVALID_DATA, "invalid UTF-8 in text message");
        while self.utf8_tail_len > 0 && !chunk.is_empty() {
            self.utf8_tail[self.utf8_tail_len as usize] = chunk[0];
            self.utf8_tail_len += 1;
            chunk = &chunk[1..];
            match std::str::from_utf8(&self.utf8_tail[..self.utf8_tail_len as usize]) {
                Ok(_) => self.utf8_tail_len = 0,
                Err(e) if e.error_len().is_some() => return Err(invalid),
                Err(_) if self.utf8_tail_len == 4 => return Err(invalid),
                Err(_) => (),
            }
        }
        if let Err(e) = std::str::from_utf8(chunk) {
            if e.error_len().is_some() {
                return Err(invalid);
            }
            let tail = &chunk[e.valid_up_to()..];
            self.utf8_tail[..tail.len()].copy_from_slice(tail);
            self.utf8_tail_len = tail.len() as u8;
        }
        Ok(())
    }

    /// Returns true when the frame was a close.
    fn finish_frame(&mut self, on_event: &mut dyn FnMut(Event<'_>)) -> Result<bool, Violation> {
        self.stage = Stage::Header;
        self.header_len = 0;
        let control = self.control.take();
        let payload = control.as_deref().map(ControlPayload::as_slice).unwrap_or_default();
        match self.opcode {
            OP_PING => {
                on_event(Event::Ping(payload));
                Ok(false)
            }
            OP_PONG => {
                on_event(Event::Pong);
                Ok(false)
            }
            OP_CLOSE => parse_close(payload).map(|(code, reason)| {
                on_event(Event::Close { code, reason });
                true
            }),
            _ if self.fin => {
                if self.message == Some(OP_TEXT) && self.utf8_tail_len != 0 {
                    return Err(violation(close_code::INVALID_DATA, "invalid UTF-8 in text message"));
                }
                self.message = None;
                on_event(Event::Message);
                Ok(false)
            }
            _ => Ok(false),
        }
    }
}

fn parse_close(payload: &[u8]) -> Result<(Option<u16>, &str), Violation> {
    match payload.len() {
        0 => Ok((None, "")),
        1 => Err(violation(close_code::PROTOCOL_ERROR, "invalid close payload")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(violation(close_code::PROTOCOL_ERROR, "invalid close code"));
            }
            let reason = std::str::from_utf8(&payload[2..])
                .map_err(|_| violation(close_code::INVALID_DATA, "invalid UTF-8 in close reason"))?;
            Ok((Some(code), reason))
        }
    }
}

#[cfg(test)]
mod tests;
