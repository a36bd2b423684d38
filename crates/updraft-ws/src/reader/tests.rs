//! The reader's own cases; `tests/rfc6455.rs` walks the RFC section by section.

use super::*;

fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    crate::client::masked_frame_with(first, [0x37, 0xfa, 0x21, 0x3d], payload)
}

#[derive(Debug, PartialEq)]
enum Seen {
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>, String),
    Message,
}

/// Feeds `bytes` in chunks of `chunk` bytes and records what the reader reported.
fn read(bytes: &[u8], chunk: usize) -> (Vec<Seen>, Result<bool, Violation>) {
    let mut reader = FrameReader::new(1 << 20);
    let mut seen = Vec::new();
    let mut data = bytes.to_vec();
    let mut res = Ok(false);
    for part in data.chunks_mut(chunk) {
        res = reader.feed(part, &mut |event| {
            seen.push(match event {
                Event::Ping(p) => Seen::Ping(p.to_vec()),
                Event::Pong => Seen::Pong,
                Event::Close { code, reason } => Seen::Close(code, reason.to_owned()),
                Event::Message => Seen::Message,
            })
        });
        if !matches!(res, Ok(false)) {
            break;
        }
    }
    (seen, res)
}

#[test]
fn ping_pong_and_close_survive_any_split() {
    let mut bytes = masked(0x89, b"are you there");
    bytes.extend(masked(0x8A, b""));
    bytes.extend(masked(0x81, "héllo wörld".as_bytes()));
    bytes.extend(masked(0x88, &[0x03, 0xE8, b'b', b'y', b'e']));
    bytes.extend(masked(0x89, b"after close is not read"));
    for chunk in [1, 2, 3, 7, 1000] {
        let (seen, res) = read(&bytes, chunk);
        assert_eq!(res, Ok(true), "chunk {chunk}");
        assert_eq!(
            seen,
            vec![
                Seen::Ping(b"are you there".to_vec()),
                Seen::Pong,
                Seen::Message,
                Seen::Close(Some(1000), "bye".into()),
            ],
            "chunk {chunk}"
        );
    }
}

#[test]
fn sixteen_and_sixty_four_bit_lengths_are_skipped_whole() {
    let mut bytes = masked(0x82, &[7u8; 500]);
    bytes.extend(masked(0x82, &[9u8; 70_000]));
    bytes.extend(masked(0x89, b"x"));
    let (seen, res) = read(&bytes, 4096);
    assert_eq!(res, Ok(false));
    assert_eq!(seen, vec![Seen::Message, Seen::Message, Seen::Ping(b"x".to_vec())]);
}

#[test]
fn fragmented_text_with_a_split_character_is_valid() {
    let text = "€uro".as_bytes();
    let mut bytes = masked(0x01, &text[..1]);
    bytes.extend(masked(0x89, b"mid"));
    bytes.extend(masked(0x80, &text[1..]));
    let (seen, res) = read(&bytes, 1);
    assert_eq!(res, Ok(false));
    assert_eq!(seen, vec![Seen::Ping(b"mid".to_vec()), Seen::Message]);
}

#[test]
fn violations_carry_the_right_close_code() {
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked", vec![0x81, 0x00], 1002),
        ("reserved bit", masked(0xC1, b"x"), 1002),
        ("unknown opcode", masked(0x83, b""), 1002),
        ("fragmented ping", masked(0x09, b""), 1002),
        ("long ping", masked(0x89, &[0u8; 126]), 1002),
        ("stray continuation", masked(0x80, b"x"), 1002),
        ("invalid utf-8", masked(0x81, &[0xCE, 0xBA, 0xFF]), 1007),
        ("truncated utf-8", masked(0x81, &[0xE2, 0x82]), 1007),
        ("close with one byte", masked(0x88, &[0x03]), 1002),
        ("close code 1005", masked(0x88, &[0x03, 0xED]), 1002),
        ("close reason not utf-8", masked(0x88, &[0x03, 0xE8, 0xFF]), 1007),
        ("too big", masked(0x82, &vec![0u8; (1 << 20) + 1]), 1009),
    ];
    for (name, bytes, code) in cases {
        let (_, res) = read(&bytes, 5);
        assert_eq!(res.map_err(|v| v.code), Err(code), "{name}");
    }
    let mut interleaved = masked(0x01, b"a");
    interleaved.extend(masked(0x81, b"b"));
    assert_eq!(read(&interleaved, 64).1.map_err(|v| v.code), Err(1002));
}
