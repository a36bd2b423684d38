//! The client side: a streaming decoder of server frames and the masked frames a client sends, for the load
//! generator (see the crate's header for why it counts frames rather than assembling messages).

use crate::reader::violation;
use crate::{OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, Violation, close_code};

/// The most leading payload bytes the decoder keeps per message. A read buffer must hold a frame header plus
/// this many bytes, since the kept bytes are taken from it in one piece.
pub const MAX_CAPTURE: usize = 2048;

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
/// must be contiguous in the caller's buffer.
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
    /// [`MAX_CAPTURE`]); 0 keeps none.
    pub fn new(capture: usize) -> Self {
        let capture = capture.min(MAX_CAPTURE);
        Self { capture, prefix: Vec::with_capacity(capture), ..Self::default() }
    }

    /// True between messages (not inside a frame or a fragmented message).
    pub fn at_boundary(&self) -> bool {
        self.skip == 0 && !self.in_message
    }

    /// Decodes as many events as `buf` allows and returns how many bytes were
    /// consumed; the caller must keep `buf[consumed..]` and append to it.
    pub fn decode(&mut self, buf: &[u8], mut on_event: impl FnMut(Event<'_>)) -> Result<usize, Violation> {
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
                    if !fin || len > 125 {
                        return Err(violation(close_code::PROTOCOL_ERROR, "invalid control frame"));
                    }
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
                OP_TEXT | OP_BINARY | OP_CONTINUATION => {
                    let starts = opcode != OP_CONTINUATION;
                    match (starts, self.in_message) {
                        (true, true) => {
                            return Err(violation(close_code::PROTOCOL_ERROR, "expected continuation frame"));
                        }
                        (false, false) => {
                            return Err(violation(close_code::PROTOCOL_ERROR, "unexpected continuation frame"));
                        }
                        _ => (),
                    }
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
                    // Lengths of up to 2^64 - 1 a frame: a message of many such frames saturates.
                    self.msg_len = self.msg_len.saturating_add(len);
                    pos += header;
                    self.skip = len;
                    self.skip_ends_message = fin;
                    if len == 0 && fin {
                        self.finish_message(&mut on_event);
                    }
                }
                _ => return Err(violation(close_code::PROTOCOL_ERROR, "unknown opcode")),
            }
        }
    }

    fn finish_message(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        self.skip_ends_message = false;
        on_event(Event::Message { prefix: &self.prefix, len: self.msg_len });
    }
}

/// Returns `(header_len, fin, opcode, payload_len)` once the header is complete.
fn parse_header(b: &[u8]) -> Result<Option<(usize, bool, u8, u64)>, Violation> {
    if b.len() < 2 {
        return Ok(None);
    }
    let fin = b[0] & 0x80 != 0;
    if b[0] & 0x70 != 0 {
        // No extension is ever negotiated.
        return Err(violation(close_code::PROTOCOL_ERROR, "reserved bits set"));
    }
    if b[1] & 0x80 != 0 {
        return Err(violation(close_code::PROTOCOL_ERROR, "server frames must not be masked"));
    }
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
    masked_frame_with(0x80 | opcode, rand::random(), payload)
}

/// A client frame with the first byte (FIN, RSV bits, opcode) and mask given, as tests build them.
pub fn masked_frame_with(first: u8, mask: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + payload.len());
    out.push(first);
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

#[cfg(test)]
mod tests;
