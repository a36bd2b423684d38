//! Translates a `$regex` (the syntax of the `regex` crate) into a PostgreSQL advanced regular expression (ARE, the
//! `~` operator) that matches exactly the same strings.
//!
//! The two syntaxes differ where it matters: ARE's `.` matches a newline, its `\w`, `\d`, `\b` and `[[:alpha:]]`
//! follow the database's locale, `(?i)` folds case by the locale too, and `$` means something else under its
//! newline options. So the pattern is not passed through: it is parsed with `regex-syntax` (the parser of the
//! `regex` crate, with the same defaults as `regex::Regex::new`), whose HIR has already resolved every flag,
//! case folding and Unicode class into explicit code point ranges, and the HIR is printed back as an ARE that
//! uses only code point literals (`\uXXXX`), bracket ranges of them, non-capturing groups, alternation,
//! repetition bounds, `^`/`$` (which, without ARE's newline options, anchor at the ends of the string only),
//! and lookaround constraints for line anchors and word boundaries. None of that depends on a locale.
//!
//! Only whether a match exists is asked, so greediness is dropped and groups do not capture.

use regex_syntax::hir::{Class, Hir, HirKind, Look, Repetition};

use crate::QueryError;

/// ARE's largest repetition bound (`RE_DUP_MAX`); larger bounds are spelled as several repetitions.
const MAX_BOUND: u32 = 255;
/// The longest translation accepted: Unicode classes spell out hundreds of ranges each, and PostgreSQL compiles
/// the pattern for every statement that uses it.
pub(crate) const MAX_TRANSLATION: usize = 256 * 1024;

/// The ARE matching exactly the strings `source` (a pattern the `regex` crate accepts) matches.
pub(crate) fn translate(source: &str) -> Result<String, QueryError> {
    let hir = regex_syntax::Parser::new().parse(source).map_err(|e| QueryError::new(format!("invalid $regex: {e}")))?;
    let mut out = String::new();
    emit(&hir, &mut out)?;
    Ok(out)
}

fn too_long() -> QueryError {
    QueryError::new("$regex is too large for PostgreSQL once its classes are spelled out")
}

fn emit(hir: &Hir, out: &mut String) -> Result<(), QueryError> {
    if out.len() > MAX_TRANSLATION {
        return Err(too_long());
    }
    match hir.kind() {
        HirKind::Empty => out.push_str("(?:)"),
        HirKind::Literal(literal) => {
            let text = std::str::from_utf8(&literal.0)
                .map_err(|_| QueryError::new("$regex matches bytes that are not UTF-8"))?;
            text.chars().for_each(|c| push_char(c, out));
        }
        HirKind::Class(class) => emit_class(class, out)?,
        HirKind::Look(look) => out.push_str(&look_around(*look)),
        HirKind::Repetition(repetition) => emit_repetition(repetition, out)?,
        HirKind::Capture(capture) => group(&capture.sub, out)?,
        HirKind::Concat(items) => {
            for item in items {
                emit(item, out)?;
            }
        }
        HirKind::Alternation(items) => {
            out.push_str("(?:");
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push('|');
                }
                emit(item, out)?;
            }
            out.push(')');
        }
    }
    Ok(())
}

fn group(hir: &Hir, out: &mut String) -> Result<(), QueryError> {
    out.push_str("(?:");
    emit(hir, out)?;
    out.push(')');
    Ok(())
}

/// `sub{min,max}` (greediness does not change whether a match exists). Bounds above ARE's limit are split:
/// `x{600}` is `x{255}x{255}x{90}`, and `x{0,600}` is `x{0,255}x{0,255}x{0,90}`, which matches any count up to 600.
fn emit_repetition(repetition: &Repetition, out: &mut String) -> Result<(), QueryError> {
    let mut atom = String::new();
    group(&repetition.sub, &mut atom)?;
    let (min, max) = (repetition.min, repetition.max);
    let mut push = |bounds: &str| -> Result<(), QueryError> {
        out.push_str(&atom);
        out.push_str(bounds);
        if out.len() > MAX_TRANSLATION { Err(too_long()) } else { Ok(()) }
    };
    match (min, max) {
        (0, None) => return push("*"),
        (1, None) => return push("+"),
        (0, Some(1)) => return push("?"),
        _ => {}
    }
    let mut required = min;
    while required > 0 {
        let n = required.min(MAX_BOUND);
        push(&format!("{{{n}}}"))?;
        required -= n;
    }
    match max {
        None => push("*")?,
        Some(max) => {
            let mut optional = max - min;
            while optional > 0 {
                let n = optional.min(MAX_BOUND);
                push(&format!("{{0,{n}}}"))?;
                optional -= n;
            }
        }
    }
    Ok(())
}

fn emit_class(class: &Class, out: &mut String) -> Result<(), QueryError> {
    let ranges: Vec<(char, char)> = match class {
        Class::Unicode(class) => class.ranges().iter().map(|r| (r.start(), r.end())).collect(),
        Class::Bytes(class) => {
            // A `Regex` (not `bytes::Regex`) only accepts byte classes that match ASCII, i.e. characters.
            if class.ranges().iter().any(|r| !r.end().is_ascii()) {
                return Err(QueryError::new("$regex matches bytes that are not UTF-8"));
            }
            class.ranges().iter().map(|r| (char::from(r.start()), char::from(r.end()))).collect()
        }
    };
    out.push_str(&bracket(&ranges, false));
    Ok(())
}

/// A bracket expression of code point ranges (`negated`: any character outside them); an empty class matches
/// nothing, and `(?!)` never holds.
fn bracket(ranges: &[(char, char)], negated: bool) -> String {
    match ranges {
        [] if !negated => "(?!)".to_owned(),
        [(low, high)] if low == high && !negated => {
            let mut out = String::new();
            push_char(*low, &mut out);
            out
        }
        _ => {
            let mut out = String::from(if negated { "[^" } else { "[" });
            for &(low, high) in ranges {
                push_char(low, &mut out);
                if high != low {
                    out.push('-');
                    push_char(high, &mut out);
                }
            }
            out.push(']');
            out
        }
    }
}

/// A character as an ARE atom, also valid in a bracket expression: ASCII letters and digits as themselves,
/// anything else as a code point escape, which no option or locale reinterprets.
fn push_char(c: char, out: &mut String) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else if u32::from(c) <= 0xFFFF {
        out.push_str(&format!("\\u{:04x}", u32::from(c)));
    } else {
        out.push_str(&format!("\\U{:08x}", u32::from(c)));
    }
}

/// The assertion as ARE constraints. Without ARE's newline options `^` and `$` are the ends of the string, as the
/// `regex` crate's (non-multi-line) `^` and `$` are; line and word assertions look at the neighbouring characters.
fn look_around(look: Look) -> String {
    let word = || word_ranges(false);
    let ascii_word = || word_ranges(true);
    match look {
        Look::Start => "^".to_owned(),
        Look::End => "$".to_owned(),
        // After a newline or at the start: not after anything else.
        Look::StartLF => format!("(?<!{})", bracket(&[('\n', '\n')], true)),
        Look::EndLF => format!("(?!{})", bracket(&[('\n', '\n')], true)),
        // As the LF forms with `\r` too, but never between `\r` and `\n`.
        Look::StartCRLF => "(?<![^\\u000a\\u000d])(?:(?<!\\u000d)|(?!\\u000a))".to_owned(),
        Look::EndCRLF => "(?![^\\u000a\\u000d])(?:(?!\\u000a)|(?<!\\u000d))".to_owned(),
        Look::WordAscii => boundary(&ascii_word()),
        Look::WordUnicode => boundary(&word()),
        Look::WordAsciiNegate => not_boundary(&ascii_word()),
        Look::WordUnicodeNegate => not_boundary(&word()),
        Look::WordStartAscii => format!("(?<!{w})(?={w})", w = bracket(&ascii_word(), false)),
        Look::WordStartUnicode => format!("(?<!{w})(?={w})", w = bracket(&word(), false)),
        Look::WordEndAscii => format!("(?<={w})(?!{w})", w = bracket(&ascii_word(), false)),
        Look::WordEndUnicode => format!("(?<={w})(?!{w})", w = bracket(&word(), false)),
        Look::WordStartHalfAscii => format!("(?<!{})", bracket(&ascii_word(), false)),
        Look::WordStartHalfUnicode => format!("(?<!{})", bracket(&word(), false)),
        Look::WordEndHalfAscii => format!("(?!{})", bracket(&ascii_word(), false)),
        Look::WordEndHalfUnicode => format!("(?!{})", bracket(&word(), false)),
    }
}

/// A word character on exactly one side.
fn boundary(word: &[(char, char)]) -> String {
    let w = bracket(word, false);
    format!("(?:(?<={w})(?!{w})|(?<!{w})(?={w}))")
}

/// Word characters on both sides or on neither.
fn not_boundary(word: &[(char, char)]) -> String {
    let w = bracket(word, false);
    format!("(?:(?<={w})(?={w})|(?<!{w})(?!{w}))")
}

/// The ranges of `\w` as the `regex` crate defines it (Unicode, or `[0-9A-Za-z_]`).
fn word_ranges(ascii: bool) -> Vec<(char, char)> {
    if ascii {
        return vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
    }
    let hir = regex_syntax::Parser::new().parse(r"\w").expect("\\w parses");
    match hir.kind() {
        HirKind::Class(Class::Unicode(class)) => class.ranges().iter().map(|r| (r.start(), r.end())).collect(),
        _ => unreachable!("\\w is a Unicode class"),
    }
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn literals_become_code_points() {
        assert_eq!(translate("^a.b$").unwrap(), r"^a[\u0000-\u0009\u000b-\U0010ffff]b$");
        assert_eq!(translate("(?s)^a.").unwrap(), r"^a[\u0000-\U0010ffff]");
        assert_eq!(translate("x{2}(y|z)?").unwrap(), "(?:x){2}(?:(?:[y-z]))?");
        assert_eq!(translate("(?i)k").unwrap(), r"[Kk\u212a]");
    }

    #[test]
    fn large_bounds_are_split() {
        assert_eq!(translate("a{300}").unwrap(), "(?:a){255}(?:a){45}");
        assert_eq!(translate("a{1,300}").unwrap(), "(?:a){1}(?:a){0,255}(?:a){0,44}");
        assert_eq!(translate("a{256,}").unwrap(), "(?:a){255}(?:a){1}(?:a)*");
    }

    #[test]
    fn huge_translations_are_refused() {
        let pattern = r"\w".repeat(100);
        assert!(translate(&pattern).is_err());
    }
}
