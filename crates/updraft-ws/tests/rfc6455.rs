//! RFC 6455 §5–7 as a table: each row is the bytes a peer sends and what the reader must make of them.
//!
//! The server's reader and the client's decoder are streaming state machines, so every row is fed whole and
//! byte by byte (and in a few odd chunk sizes); the events and the end must not depend on how reads split the
//! bytes. Where the RFC leaves a choice (non-minimal lengths, unknown close codes), the row pins today's answer.

use updraft_ws::client::{self, FrameDecoder};
use updraft_ws::{Event, FrameReader};

/// The reader's message limit in these rows.
const MAX_MESSAGE: u64 = 1 << 17;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const FIN: u8 = 0x80;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONT: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// How a frame's length is written: the shortest form, or a longer one than needed.
#[derive(Clone, Copy)]
enum Len {
    Shortest,
    Sixteen,
    SixtyFour,
}

/// A frame's header with `len` written in `form`, masked or not.
fn header(first: u8, len: u64, form: Len, masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let form = match form {
        Len::Shortest if len < 126 => return vec![first, mask_bit | len as u8],
        Len::Shortest if len <= 0xFFFF => Len::Sixteen,
        Len::Shortest => Len::SixtyFour,
        other => other,
    };
    let mut out = vec![first];
    match form {
        Len::Sixteen => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out
}

fn masked_in(first: u8, payload: &[u8], form: Len) -> Vec<u8> {
    let mut out = header(first, payload.len() as u64, form, true);
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// A client frame as the RFC wants it: masked, the length in the shortest form.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    masked_in(first, payload, Len::Shortest)
}

/// The header and mask of a masked frame announcing `len` bytes, without its payload.
fn masked_header(first: u8, len: u64) -> Vec<u8> {
    let mut out = header(first, len, Len::Shortest, true);
    out.extend_from_slice(&MASK);
    out
}

/// Payload bytes of a masked frame announced by `masked_header`, `offset` bytes into it.
fn masked_payload(payload: &[u8], offset: usize) -> Vec<u8> {
    payload.iter().enumerate().map(|(i, b)| b ^ MASK[(offset + i) % 4]).collect()
}

fn unmasked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(first, payload.len() as u64, Len::Shortest, false);
    out.extend_from_slice(payload);
    out
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    [&code.to_be_bytes()[..], reason].concat()
}

fn concat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>, String),
    Message,
}

/// Where the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    /// Every byte read; more may come.
    Open,
    /// The peer's close was read (and nothing after it).
    Closed,
    /// A violation: the server closes with this code.
    Refused(u16),
}
use End::*;

struct Row {
    name: String,
    input: Vec<u8>,
    seen: Vec<Seen>,
    end: End,
}

fn row(name: impl Into<String>, input: Vec<u8>, seen: Vec<Seen>, end: End) -> Row {
    Row { name: name.into(), input, seen, end }
}

fn message() -> Vec<Seen> {
    vec![Seen::Message]
}

fn framing_rows() -> Vec<Row> {
    let big = vec![b'b'; 70_000];
    vec![
        // §5.2: the three length forms, at their edges.
        row("7-bit length", masked(FIN | TEXT, b"hello"), message(), Open),
        row("empty text", masked(FIN | TEXT, b""), message(), Open),
        row("125 bytes, the longest 7-bit length", masked(FIN | BINARY, &[7; 125]), message(), Open),
        row("126 bytes, 16-bit length", masked(FIN | BINARY, &[7; 126]), message(), Open),
        row("65535 bytes, the longest 16-bit length", masked(FIN | BINARY, &[7; 65_535]), message(), Open),
        row("65536 bytes, 64-bit length", masked(FIN | BINARY, &[7; 65_536]), message(), Open),
        row("70000 bytes of text", masked(FIN | TEXT, &big), message(), Open),
        // §5.2 asks senders for the shortest form; the reader takes longer ones (as Autobahn does).
        row("non-minimal 16-bit length", masked_in(FIN | TEXT, b"hi", Len::Sixteen), message(), Open),
        row("non-minimal 64-bit length", masked_in(FIN | TEXT, b"hi", Len::SixtyFour), message(), Open),
        row(
            "non-minimal length on a ping",
            masked_in(FIN | PING, b"p", Len::Sixteen),
            vec![Seen::Ping(b"p".to_vec())],
            Open,
        ),
        row("64-bit length with its top bit set", masked_header(FIN | BINARY, 1 << 63), vec![], Refused(1002)),
        row(
            "two frames in one read",
            concat(&[masked(FIN | TEXT, b"a"), masked(FIN | BINARY, b"b")]),
            vec![Seen::Message; 2],
            Open,
        ),
        row("a header alone waits for its payload", masked_header(FIN | TEXT, 10), vec![], Open),
        // §5.3: a server must close on an unmasked client frame.
        row("unmasked text", unmasked(FIN | TEXT, b"hi"), vec![], Refused(1002)),
        row("unmasked empty ping", unmasked(FIN | PING, b""), vec![], Refused(1002)),
        row("unmasked 16-bit length", unmasked(FIN | BINARY, &[0; 200]), vec![], Refused(1002)),
        row(
            "unmasked after a good frame",
            concat(&[masked(FIN | TEXT, b"a"), unmasked(FIN | TEXT, b"b")]),
            message(),
            Refused(1002),
        ),
        row(
            "the mask rotates over the payload",
            masked(FIN | PING, b"0123456789"),
            vec![Seen::Ping(b"0123456789".to_vec())],
            Open,
        ),
        // §5.2: no extension is negotiated, so any reserved bit is an error.
        row("RSV1", masked(FIN | 0x40 | TEXT, b"x"), vec![], Refused(1002)),
        row("RSV2", masked(FIN | 0x20 | TEXT, b"x"), vec![], Refused(1002)),
        row("RSV3", masked(FIN | 0x10 | TEXT, b"x"), vec![], Refused(1002)),
        row("RSV1 on a ping", masked(FIN | 0x40 | PING, b""), vec![], Refused(1002)),
        row(
            "RSV after a good frame",
            concat(&[masked(FIN | TEXT, b"a"), masked(FIN | 0x70 | TEXT, b"")]),
            message(),
            Refused(1002),
        ),
    ]
}

fn opcode_rows() -> Vec<Row> {
    // §5.2: 0x3–0x7 are reserved data opcodes, 0xB–0xF reserved control opcodes.
    let mut rows: Vec<Row> = (0x3..=0x7)
        .chain(0xB..=0xF)
        .map(|op| row(format!("reserved opcode {op:#x}"), masked(FIN | op, b""), vec![], Refused(1002)))
        .collect();
    rows.push(row(
        "reserved opcode after a ping",
        concat(&[masked(FIN | PING, b""), masked(FIN | 0xB, b"x")]),
        vec![Seen::Ping(vec![])],
        Refused(1002),
    ));
    rows
}

fn control_rows() -> Vec<Row> {
    let ping = |p: &[u8]| Seen::Ping(p.to_vec());
    vec![
        // §5.5: control frames carry ≤ 125 bytes and are never fragmented; they may come between fragments.
        row("empty ping", masked(FIN | PING, b""), vec![ping(b"")], Open),
        row("ping of 125 bytes", masked(FIN | PING, &[b'p'; 125]), vec![ping(&[b'p'; 125])], Open),
        row("ping of 126 bytes", masked(FIN | PING, &[b'p'; 126]), vec![], Refused(1002)),
        row("pong of 126 bytes", masked(FIN | PONG, &[0; 126]), vec![], Refused(1002)),
        row("close of 126 bytes", masked(FIN | CLOSE, &close_payload(1000, &[b'r'; 124])), vec![], Refused(1002)),
        row("ping announcing 2^16 bytes", masked_header(FIN | PING, 65_536), vec![], Refused(1002)),
        row("pong", masked(FIN | PONG, b"any"), vec![Seen::Pong], Open),
        row("fragmented ping", masked(PING, b"a"), vec![], Refused(1002)),
        row("fragmented pong", masked(PONG, b""), vec![], Refused(1002)),
        row("fragmented close", masked(CLOSE, &close_payload(1000, b"")), vec![], Refused(1002)),
        row(
            "ping between fragments",
            concat(&[masked(TEXT, b"ab"), masked(FIN | PING, b"mid"), masked(FIN | CONT, b"cd")]),
            vec![ping(b"mid"), Seen::Message],
            Open,
        ),
    ]
}

fn fragmentation_rows() -> Vec<Row> {
    vec![
        // §5.4: a message is a start frame, continuations, and one FIN; nothing else interleaves but control.
        row(
            "text in three fragments",
            concat(&[masked(TEXT, b"a"), masked(CONT, b"b"), masked(FIN | CONT, b"c")]),
            message(),
            Open,
        ),
        row(
            "binary in two fragments",
            concat(&[masked(BINARY, &[0xFF]), masked(FIN | CONT, &[0xFE])]),
            message(),
            Open,
        ),
        row(
            "empty fragments",
            concat(&[masked(TEXT, b""), masked(CONT, b""), masked(FIN | CONT, b"")]),
            message(),
            Open,
        ),
        row("continuation without a start", masked(FIN | CONT, b"x"), vec![], Refused(1002)),
        row("unfinished continuation without a start", masked(CONT, b"x"), vec![], Refused(1002)),
        row(
            "continuation after a finished message",
            concat(&[masked(FIN | TEXT, b"a"), masked(FIN | CONT, b"b")]),
            message(),
            Refused(1002),
        ),
        row("new text mid-message", concat(&[masked(TEXT, b"a"), masked(FIN | TEXT, b"b")]), vec![], Refused(1002)),
        row("new binary mid-message", concat(&[masked(BINARY, b"a"), masked(BINARY, b"b")]), vec![], Refused(1002)),
        row(
            "new text mid-message after a ping",
            concat(&[masked(TEXT, b"a"), masked(FIN | PING, b""), masked(FIN | TEXT, b"b")]),
            vec![Seen::Ping(vec![])],
            Refused(1002),
        ),
        row(
            "a message after a fragmented one",
            concat(&[masked(TEXT, b"a"), masked(FIN | CONT, b"b"), masked(FIN | BINARY, b"c")]),
            vec![Seen::Message; 2],
            Open,
        ),
    ]
}

fn utf8_rows() -> Vec<Row> {
    let euro = "€".as_bytes(); // E2 82 AC
    // A text frame announcing 20 bytes of which only `sent` arrive: a refusal proves the reader did not wait.
    let partial = |first: u8, sent: &[u8]| concat(&[masked_header(first, 20), masked_payload(sent, 0)]);
    vec![
        // §5.6, §8.1: text must be UTF-8, checked as it arrives, across fragments and reads.
        row("valid multi-byte text", masked(FIN | TEXT, "κόσμε €𝄞".as_bytes()), message(), Open),
        row("0xFF", masked(FIN | TEXT, &[b'a', 0xFF]), vec![], Refused(1007)),
        row("overlong encoding", masked(FIN | TEXT, &[0xC0, 0xAF]), vec![], Refused(1007)),
        row("UTF-16 surrogate", masked(FIN | TEXT, &[0xED, 0xA0, 0x80]), vec![], Refused(1007)),
        row("beyond U+10FFFF", masked(FIN | TEXT, &[0xF4, 0x90, 0x80, 0x80]), vec![], Refused(1007)),
        row("lone continuation byte", masked(FIN | TEXT, &[0x80]), vec![], Refused(1007)),
        row("character cut by the end of the message", masked(FIN | TEXT, &euro[..2]), vec![], Refused(1007)),
        row("fail fast: 0xFF before the frame ends", partial(FIN | TEXT, &[b'a', b'b', 0xFF]), vec![], Refused(1007)),
        row(
            "fail fast: bad second byte before the frame ends",
            partial(FIN | TEXT, &[0xCE, 0xBA, 0xE2, 0x28]),
            vec![],
            Refused(1007),
        ),
        row("fail fast in an unfinished fragment", partial(TEXT, &[0xF0, 0x28]), vec![], Refused(1007)),
        row("an unfinished character waits for its frame", partial(FIN | TEXT, &euro[..2]), vec![], Open),
        row(
            "character split across fragments",
            concat(&[masked(TEXT, &euro[..1]), masked(FIN | PING, b""), masked(FIN | CONT, &euro[1..])]),
            vec![Seen::Ping(vec![]), Seen::Message],
            Open,
        ),
        row(
            "character split over three fragments",
            concat(&[masked(TEXT, &euro[..1]), masked(CONT, &euro[1..2]), masked(FIN | CONT, &euro[2..])]),
            message(),
            Open,
        ),
        row(
            "invalid sequence split across fragments",
            concat(&[masked(TEXT, &[0xE2]), masked(FIN | CONT, &[0x28, 0xA1])]),
            vec![],
            Refused(1007),
        ),
        row(
            "fail fast in a continuation",
            concat(&[masked(TEXT, b"ok"), masked_header(FIN | CONT, 10), masked_payload(&[0xFF], 0)]),
            vec![],
            Refused(1007),
        ),
        row(
            "character cut by an empty final fragment",
            concat(&[masked(TEXT, &euro[..2]), masked(FIN | CONT, b"")]),
            vec![],
            Refused(1007),
        ),
        row("binary is not checked", masked(FIN | BINARY, &[0xFF, 0xC0]), message(), Open),
        row(
            "binary fragments are not checked",
            concat(&[masked(BINARY, &[0xE2]), masked(FIN | CONT, &[0x28])]),
            message(),
            Open,
        ),
    ]
}

fn close_rows() -> Vec<Row> {
    let closed = |code: u16, reason: &str| vec![Seen::Close(Some(code), reason.into())];
    let mut rows = vec![
        // §5.5.1, §7.1.5, §7.4: an empty close, or a code and a UTF-8 reason; nothing after it is read.
        row("empty close", masked(FIN | CLOSE, b""), vec![Seen::Close(None, String::new())], Closed),
        row("close with a reason", masked(FIN | CLOSE, &close_payload(1000, b"bye")), closed(1000, "bye"), Closed),
        row(
            "close with a multi-byte reason",
            masked(FIN | CLOSE, &close_payload(1001, "süß".as_bytes())),
            closed(1001, "süß"),
            Closed,
        ),
        row(
            "close with a 123-byte reason",
            masked(FIN | CLOSE, &close_payload(3000, &[b'r'; 123])),
            closed(3000, &"r".repeat(123)),
            Closed,
        ),
        row("close payload of one byte", masked(FIN | CLOSE, &[0x03]), vec![], Refused(1002)),
        row("close reason not UTF-8", masked(FIN | CLOSE, &close_payload(1000, &[0xFF])), vec![], Refused(1007)),
        row(
            "close reason with a cut character",
            masked(FIN | CLOSE, &close_payload(1000, &"€".as_bytes()[..2])),
            vec![],
            Refused(1007),
        ),
        row(
            "nothing after a close is read",
            concat(&[masked(FIN | CLOSE, &close_payload(1000, b"")), masked(FIN | PING, b"late"), unmasked(0xFF, b"")]),
            closed(1000, ""),
            Closed,
        ),
        row(
            "close between fragments",
            concat(&[masked(TEXT, b"half"), masked(FIN | CLOSE, &close_payload(1001, b""))]),
            closed(1001, ""),
            Closed,
        ),
    ];
    // §7.4.1 and the IANA registry: codes a peer may send.
    for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] {
        rows.push(row(
            format!("close code {code}"),
            masked(FIN | CLOSE, &close_payload(code, b"")),
            closed(code, ""),
            Closed,
        ));
    }
    // §7.4.1–7.4.2: reserved, "must not be sent" (1005, 1006, 1015) and out-of-range codes.
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
        rows.push(row(
            format!("close code {code}"),
            masked(FIN | CLOSE, &close_payload(code, b"")),
            vec![],
            Refused(1002),
        ));
    }
    rows
}

fn size_rows() -> Vec<Row> {
    let limit = MAX_MESSAGE as usize;
    vec![
        // §10.4: a message over the limit is refused (1009) as soon as its length is known.
        row("a message of exactly the limit", masked(FIN | BINARY, &vec![0; limit]), message(), Open),
        row("a frame announcing one byte over", masked_header(FIN | BINARY, MAX_MESSAGE + 1), vec![], Refused(1009)),
        row(
            "fragments adding up to one byte over",
            concat(&[masked(BINARY, &vec![0; limit - 10]), masked_header(FIN | CONT, 11)]),
            vec![],
            Refused(1009),
        ),
        row(
            "control frames do not count",
            concat(&[masked(TEXT, &vec![b'a'; limit]), masked(FIN | PING, &[0; 125]), masked(FIN | CONT, b"")]),
            vec![Seen::Ping(vec![0; 125]), Seen::Message],
            Open,
        ),
        row(
            "the limit is per message",
            concat(&[masked(FIN | BINARY, &vec![0; limit]), masked(FIN | BINARY, &vec![0; limit])]),
            vec![Seen::Message; 2],
            Open,
        ),
    ]
}

/// Feeds `input` in pieces of `chunk` bytes to a fresh reader, stopping where the reader stops.
fn read(input: &[u8], chunk: usize) -> (Vec<Seen>, End) {
    let mut reader = FrameReader::new(MAX_MESSAGE);
    let mut seen = Vec::new();
    let mut data = input.to_vec();
    for part in data.chunks_mut(chunk) {
        let res = reader.feed(part, &mut |event| {
            seen.push(match event {
                Event::Ping(p) => Seen::Ping(p.to_vec()),
                Event::Pong => Seen::Pong,
                Event::Close { code, reason } => Seen::Close(code, reason.to_owned()),
                Event::Message => Seen::Message,
            })
        });
        match res {
            Ok(false) => (),
            Ok(true) => return (seen, Closed),
            Err(violation) => return (seen, Refused(violation.code)),
        }
    }
    (seen, Open)
}

#[test]
fn server_reader_follows_rfc_6455() {
    let tables =
        [framing_rows(), opcode_rows(), control_rows(), fragmentation_rows(), utf8_rows(), close_rows(), size_rows()];
    let mut failures = Vec::new();
    let mut rows = 0;
    for row in tables.iter().flatten() {
        rows += 1;
        for chunk in [usize::MAX, 1, 2, 3, 7] {
            let got = read(&row.input, chunk.min(row.input.len().max(1)));
            if got != (row.seen.clone(), row.end) {
                let how = if chunk == usize::MAX { "whole".to_owned() } else { format!("in {chunk}-byte reads") };
                failures.push(format!(
                    "{} ({how}): expected {:?} {:?}, got {:?} {:?}",
                    row.name, row.seen, row.end, got.0, got.1
                ));
            }
        }
    }
    assert!(rows > 100, "the tables shrank to {rows} rows");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// The client's decoder on server frames (unmasked): what it reports and whether it refuses.
#[derive(Debug, Clone, PartialEq)]
enum Decoded {
    Message(u64),
    Ping(Vec<u8>),
    Pong,
    Close(Vec<u8>),
}

/// A row of the client's table: name, input, what the decoder reports, and its end (a close code when it refuses).
type ClientRow = (&'static str, Vec<u8>, Vec<Decoded>, Result<(), u16>);

/// Feeds `input` to the decoder `chunk` bytes at a time, keeping what it left unconsumed as a reader would.
fn decode(input: &[u8], chunk: usize) -> (Vec<Decoded>, Result<(), u16>) {
    let mut decoder = FrameDecoder::new(0);
    let mut seen = Vec::new();
    let mut pending = Vec::new();
    for piece in input.chunks(chunk) {
        pending.extend_from_slice(piece);
        let res = decoder.decode(&pending, |event| {
            seen.push(match event {
                client::Event::Message { len, .. } => Decoded::Message(len),
                client::Event::Ping(p) => Decoded::Ping(p.to_vec()),
                client::Event::Pong => Decoded::Pong,
                client::Event::Close(p) => Decoded::Close(p.to_vec()),
            })
        });
        match res {
            Ok(used) => drop(pending.drain(..used)),
            Err(violation) => return (seen, Err(violation.code)),
        }
    }
    (seen, Ok(()))
}

#[test]
fn client_decoder_follows_rfc_6455() {
    use Decoded::*;
    let unmasked_in = |first: u8, payload: &[u8], form: Len| {
        let mut out = header(first, payload.len() as u64, form, false);
        out.extend_from_slice(payload);
        out
    };
    let rows: Vec<ClientRow> = vec![
        ("7-bit length", unmasked(FIN | TEXT, b"hello"), vec![Message(5)], Ok(())),
        ("16-bit length", unmasked(FIN | TEXT, &[b'a'; 300]), vec![Message(300)], Ok(())),
        ("64-bit length", unmasked(FIN | BINARY, &[0; 70_000]), vec![Message(70_000)], Ok(())),
        ("non-minimal length", unmasked_in(FIN | TEXT, b"hi", Len::SixtyFour), vec![Message(2)], Ok(())),
        (
            "control frames",
            concat(&[unmasked(FIN | PING, b"p"), unmasked(FIN | PONG, b""), unmasked(FIN | CLOSE, &[3, 232])]),
            vec![Ping(b"p".to_vec()), Pong, Close(vec![3, 232])],
            Ok(()),
        ),
        (
            "fragments count once",
            concat(&[unmasked(TEXT, b"ab"), unmasked(FIN | PING, b""), unmasked(FIN | CONT, b"c")]),
            vec![Ping(vec![]), Message(3)],
            Ok(()),
        ),
        ("a masked server frame", masked(FIN | TEXT, b"x"), vec![], Err(1002)),
        ("reserved bits", unmasked(FIN | 0x40 | TEXT, b"x"), vec![], Err(1002)),
        ("reserved opcode", unmasked(FIN | 0x3, b""), vec![], Err(1002)),
        ("reserved control opcode", unmasked(FIN | 0xB, b""), vec![], Err(1002)),
        ("ping of 126 bytes", unmasked(FIN | PING, &[0; 126]), vec![], Err(1002)),
        ("fragmented ping", unmasked(PING, b""), vec![], Err(1002)),
        ("continuation without a start", unmasked(FIN | CONT, b"x"), vec![], Err(1002)),
        ("new message mid-message", concat(&[unmasked(TEXT, b"a"), unmasked(FIN | TEXT, b"b")]), vec![], Err(1002)),
    ];
    for (name, input, seen, end) in rows {
        for chunk in [input.len(), 1, 3] {
            assert_eq!(decode(&input, chunk), (seen.clone(), end), "{name}, {chunk}-byte reads");
        }
    }
}
