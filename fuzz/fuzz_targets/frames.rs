//! Arbitrary bytes, in arbitrary reads, through the server's frame reader and the client's frame decoder: neither
//! may panic, and what they report (events, and where they stop) must not depend on how reads split the bytes.
//!
//! Input: one byte `n` (mod 16), then `n` read sizes (a 0 reads one byte), then the bytes of the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use updraft_ws::client::{self, FrameDecoder};
use updraft_ws::{Event, FrameReader};

/// Small, so that fuzzed fragments reach the 1009 path.
const MAX_MESSAGE: u64 = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let n = (n % 16) as usize;
    if rest.len() < n {
        return;
    }
    let (sizes, stream) = rest.split_at(n);
    let cut = |sizes: &[u8]| -> Vec<usize> {
        let mut cuts = Vec::new();
        let (mut at, mut i) = (0, 0);
        while at < stream.len() {
            let size = sizes.get(i % sizes.len().max(1)).map_or(stream.len(), |&s| (s as usize).max(1));
            at = (at + size).min(stream.len());
            cuts.push(at);
            i += 1;
        }
        cuts
    };
    let whole = vec![stream.len()];
    let one_by_one: Vec<usize> = (1..=stream.len()).collect();
    let chunked = cut(sizes);

    let expected = read(stream, &whole);
    assert_eq!(read(stream, &one_by_one), expected, "server reader, byte by byte");
    assert_eq!(read(stream, &chunked), expected, "server reader, in reads of {sizes:?}");

    let expected = decode(stream, &whole);
    assert_eq!(decode(stream, &one_by_one), expected, "client decoder, byte by byte");
    assert_eq!(decode(stream, &chunked), expected, "client decoder, in reads of {sizes:?}");
});

/// Events as text, then where the reader stopped: "open", "closed" or the close code of a violation.
fn read(stream: &[u8], cuts: &[usize]) -> (Vec<String>, String) {
    let mut reader = FrameReader::new(MAX_MESSAGE);
    let mut seen = Vec::new();
    let mut data = stream.to_vec();
    let mut from = 0;
    for &to in cuts {
        let res = reader.feed(&mut data[from..to], &mut |event: Event<'_>| seen.push(format!("{event:?}")));
        from = to;
        match res {
            Ok(false) => (),
            Ok(true) => return (seen, "closed".into()),
            Err(violation) => return (seen, violation.code.to_string()),
        }
    }
    (seen, "open".into())
}

/// Events as text, then where the decoder stopped, and the bytes it left unconsumed.
fn decode(stream: &[u8], cuts: &[usize]) -> (Vec<String>, String) {
    // Capture sizes that fit the tiny reads as well as the whole: the decoder waits for a prefix in one piece.
    let mut decoder = FrameDecoder::new(8);
    let mut seen = Vec::new();
    let mut pending = Vec::new();
    let mut from = 0;
    for &to in cuts {
        pending.extend_from_slice(&stream[from..to]);
        from = to;
        match decoder.decode(&pending, |event: client::Event<'_>| seen.push(format!("{event:?}"))) {
            Ok(used) => drop(pending.drain(..used)),
            Err(violation) => return (seen, violation.code.to_string()),
        }
    }
    (seen, format!("open, {} bytes left", pending.len()))
}
