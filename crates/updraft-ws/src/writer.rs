//! Server frames: unmasked (RFC 6455 §5.1), so one encoded frame serves every receiver of a message.

use bytes::{BufMut, Bytes, BytesMut};

use crate::OP_CLOSE;

/// Encodes one unmasked server frame.
pub fn encode_frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    put_frame(&mut out, opcode, payload);
    out.freeze()
}

/// Appends one unmasked, unfragmented frame, its length in the shortest form.
pub fn put_frame(out: &mut impl BufMut, opcode: u8, payload: &[u8]) {
    out.put_u8(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.put_u8(n as u8),
        n if n <= u16::MAX as usize => {
            out.put_u8(126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(127);
            out.put_u64(n as u64);
        }
    }
    out.put_slice(payload);
}

/// A close frame; the reason is cut at a character boundary to fit a control frame.
pub fn put_close_frame(out: &mut impl BufMut, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = [0u8; 125];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    put_frame(out, OP_CLOSE, &payload[..2 + end]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OP_BINARY, OP_TEXT};

    #[test]
    fn encodes_all_three_length_forms() {
        assert_eq!(&encode_frame(OP_TEXT, b"hi")[..], &[0x81, 2, b'h', b'i']);
        let mid = encode_frame(OP_TEXT, &[b'a'; 300]);
        assert_eq!(&mid[..4], &[0x81, 126, 1, 44]);
        assert_eq!(mid.len(), 304);
        let big = encode_frame(OP_BINARY, &vec![0u8; 70_000]);
        assert_eq!(&big[..2], &[0x82, 127]);
        assert_eq!(u64::from_be_bytes(big[2..10].try_into().unwrap()), 70_000);
    }

    #[test]
    fn close_reason_is_cut_at_a_char_boundary() {
        let mut out = Vec::new();
        put_close_frame(&mut out, 1001, &"é".repeat(100));
        assert_eq!(out[1] as usize, out.len() - 2);
        assert!(out.len() - 2 <= 125);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
    }
}
