//! The decoder's own cases, fed the way reads deliver bytes; `tests/rfc6455.rs` has the RFC's.

use super::*;

/// What the load generator keeps of a latency frame (its ASCII timestamp leads the payload).
const PREFIX_LEN: usize = 32;
/// What it keeps of a JSON frame whose stamp sits inside it.
const JSON_PREFIX_LEN: usize = 1024;

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
    wire.extend(frame(false, OP_CONTINUATION, b"45"));
    wire.extend(frame(true, OP_CONTINUATION, b"6"));
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
fn rejects_masked_server_frames() {
    let mut dec = FrameDecoder::new(0);
    assert!(dec.decode(&[0x81, 0x81, 0, 0, 0, 0, b'x'], |_| {}).is_err());
}

/// Found by the `frames` fuzz target: a message whose frames claim lengths that add up past 2^64 - 1.
#[test]
fn a_message_longer_than_u64_saturates_rather_than_panics() {
    // The fuzz input: a count of read sizes (1), the size, then the stream.
    let stream = &include_bytes!("../../../../fuzz/seeds/frames/client-message-length-overflow")[2..];
    let mut dec = FrameDecoder::new(8);
    let _ = dec.decode(stream, |_| {});
    let mut dec = FrameDecoder::new(8);
    let mut at = 0;
    for end in 1..=stream.len() {
        match dec.decode(&stream[at..end], |_| {}) {
            Ok(used) => at += used,
            Err(_) => break,
        }
    }
}
