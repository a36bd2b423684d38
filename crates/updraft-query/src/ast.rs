//! The typed filter and sort AST.
//!
//! The atoms that need validation (`Path`, `Key`, `Pattern`) can only be built by the parser: path segments and
//! object keys are safe to splice into SQL JSON paths, and regexes compile. So the evaluator and the SQL compiler
//! are infallible on any tree.

use serde_json::Number;

/// A parsed `q` filter: the documents for which every clause holds.
///
/// `{}` has no clauses and matches every document.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub clauses: Vec<Clause>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// `{"a.b": <cond>}`: every op holds for the value at `path`.
    Field {
        path: Path,
        ops: Vec<Op>,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Nor(Vec<Filter>),
}

/// A dotted field path such as `track.id`.
///
/// Each segment matches `[A-Za-z0-9_]+`, so a path can be spliced into a SQL JSON path literal (`'$.track.id'`)
/// without quoting. A path walks through objects only: a segment applied to an array or a scalar finds nothing
/// (unlike MongoDB, `tags.name` does not reach into the elements of `tags`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    segments: Vec<String>,
}

/// A condition on the value found at a path, or on an array element inside `$elemMatch`.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Equality; also `$ne` (as `Not([Eq])`), implicit equality and the items of `$in`/`$all`.
    ///
    /// A value matches a non-null literal when it equals the literal strictly, or when it is an array with an
    /// element that does. Strict equality is: same JSON type, numbers numerically, strings exactly, an object
    /// literal is a *subset* (the value is an object holding each literal key with a strictly equal value, other
    /// keys ignored: ref equality), and an array literal needs the same length and strictly equal elements.
    /// A `null` literal matches a missing value, `null`, and an array holding `null`.
    Eq(Literal),
    /// `$in`: some literal matches as for `Eq`. `$nin` is `Not([In])`.
    In(Vec<Literal>),
    /// `$all`: every literal matches as for `Eq`; an empty list matches nothing.
    All(Vec<Literal>),
    /// `$gt`, `$gte`, `$lt`, `$lte` against a number or a string; other types never compare.
    Cmp(CmpOp, Scalar),
    /// `$exists`: whether the path holds a value (`null` counts as a value).
    Exists(bool),
    /// `$regex` (with its `$options` folded into the pattern): matches strings, or arrays with a matching string.
    Regex(Pattern),
    /// `$size`: the value is an array of exactly this length.
    Size(u64),
    /// `$elemMatch`: the value is an array with an element satisfying the condition.
    ElemMatch(ElemMatch),
    /// `$not`, `$ne`, `$nin`: the conjunction of the ops does not hold.
    Not(Vec<Op>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ElemMatch {
    /// `{"$elemMatch": {"$gte": 2, "$lt": 5}}`: ops applied to the element itself.
    Ops(Vec<Op>),
    /// `{"$elemMatch": {"id": "X"}}`: the element is an object matching the filter as a document.
    Filter(Filter),
}

/// A JSON value used as an operand. Object keys are valid path segments.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Literal>),
    /// An object literal matches as a subset, so key order does not matter.
    Object(Vec<(Key, Literal)>),
}

/// An object key in a literal, validated like a path segment because it becomes part of a SQL JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key(String);

/// An operand of an ordering comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Number(Number),
    String(String),
}

/// A validated regular expression in the syntax of the `regex` crate.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The pattern with `$options` prepended as inline flags, e.g. `(?i)^todo`.
    source: String,
    matcher: Matcher,
}

#[derive(Debug, Clone)]
enum Matcher {
    /// `^` and literal characters alone ([`whole_prefix`]): the strings starting with this. Compiling it as a
    /// regex was a third of a prefix search's request, and an index range answers it in SQL.
    Prefix(String),
    Regex(regex::Regex),
}

/// A parsed `sort`: keys in priority order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sort {
    pub keys: Vec<SortKey>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub path: Path,
    pub direction: Direction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

impl Filter {
    /// The top-level properties that the filter's conditions read (not those inside `$elemMatch`), each once.
    pub fn properties(&self) -> Vec<&str> {
        fn walk<'f>(filter: &'f Filter, out: &mut Vec<&'f str>) {
            for clause in &filter.clauses {
                match clause {
                    Clause::Field { path, .. } => {
                        if let Some(first) = path.segments.first().filter(|it| !out.contains(&it.as_str())) {
                            out.push(first);
                        }
                    }
                    Clause::And(filters) | Clause::Or(filters) | Clause::Nor(filters) => {
                        filters.iter().for_each(|it| walk(it, out))
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

impl Path {
    /// Callers must have validated the segments; see `parse`.
    pub(crate) fn new(segments: Vec<String>) -> Path {
        debug_assert!(segments.iter().all(|it| is_segment(it)));
        Path { segments }
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.segments.join("."))
    }
}

impl Key {
    pub(crate) fn new(key: String) -> Key {
        debug_assert!(is_segment(&key));
        Key(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Pattern {
    /// Validates and compiles `source` (a literal prefix needs no compiling).
    pub(crate) fn new(source: String) -> Result<Pattern, regex::Error> {
        let matcher = match whole_prefix(&source) {
            Some(prefix) => Matcher::Prefix(prefix),
            None => Matcher::Regex(regex::Regex::new(&source)?),
        };
        Ok(Pattern { source, matcher })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The literal when the pattern is `^` and literal characters alone: it matches exactly the strings starting
    /// with it, which an index range holds ([`crate::sqlite::literal_prefix`]).
    pub fn whole_prefix(&self) -> Option<&str> {
        match &self.matcher {
            Matcher::Prefix(prefix) => Some(prefix),
            Matcher::Regex(_) => None,
        }
    }

    pub fn is_match(&self, text: &str) -> bool {
        match &self.matcher {
            Matcher::Prefix(prefix) => text.starts_with(prefix.as_str()),
            Matcher::Regex(regex) => regex.is_match(text),
        }
    }
}

/// The literal a pattern of `^` and literal characters alone (escaped punctuation included) stands for; `None`
/// for anything else, flags included.
fn whole_prefix(pattern: &str) -> Option<String> {
    let rest = pattern.strip_prefix('^')?;
    if rest.is_empty() || pattern.contains('|') {
        return None;
    }
    let mut literal = String::with_capacity(rest.len());
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) if escaped.is_ascii_punctuation() => literal.push(escaped),
                _ => return None,
            },
            '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '^' | '$' => return None,
            c if c.is_whitespace() && c != ' ' => return None,
            c => literal.push(c),
        }
    }
    Some(literal)
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.source == other.source
    }
}

pub(crate) fn is_segment(segment: &str) -> bool {
    !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
