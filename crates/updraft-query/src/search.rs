//! The phrase of a full-text search (`GET /v1/search`, docs/search.md): a Lucene-like syntax parsed into a
//! boolean [`Expr`] of word sequences, which [`fts5`] turns into SQLite FTS5 query text and [`Expr::matches`]
//! evaluates in memory. The evaluator is the reference: the store's answer must be exactly the documents it
//! matches (a property test checks this against SQLite).
//!
//! Syntax:
//! - words: `cat`; adjacent terms are joined by the default operator (`OR` unless the request says `AND`), which
//!   binds tighter than an explicit `AND`, which binds tighter than `OR`; a negated term among them excludes
//!   whatever the default (`cat -dog`: cat without dog);
//! - `AND`, `OR`, `NOT` (upper case; lower case they are words), `-term` for `NOT term`, `+term` for `term`,
//!   parentheses;
//! - `"a quoted phrase"`: the words in a row;
//! - `cat*`: a word starting with `cat`; `*cat*` or `*cat`: `cat` anywhere in the text, inside words too (three
//!   characters at least; with fewer it is read as `cat*`); a lone `*`: every object.
//!
//! A word is a run of letters and digits; anything else separates words, so `e-mail` is the phrase `"e mail"`.
//! Case and accents do not matter (`Café` finds `cafe`).

pub mod fts5;

use crate::QueryError;

/// The longest phrase accepted, in bytes.
pub const MAX_PHRASE_BYTES: usize = 1000;
/// The most terms (words, phrases, wildcards) in one phrase.
pub const MAX_TERMS: usize = 64;
/// The deepest nesting of parentheses and `NOT`s.
pub const MAX_DEPTH: usize = 16;
/// The fewest characters a leading-`*` term holds (a trigram index cannot look for less).
pub const MIN_INSIDE_CHARS: usize = 3;

/// How adjacent terms combine when no operator stands between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Operator {
    And,
    #[default]
    Or,
}

impl Operator {
    /// `AND` or `OR`, in any case.
    pub fn parse(text: &str) -> Result<Operator, QueryError> {
        match text.to_ascii_uppercase().as_str() {
            "AND" => Ok(Operator::And),
            "OR" => Ok(Operator::Or),
            _ => Err(QueryError::new("defaultOperator is AND or OR")),
        }
    }
}

/// A parsed phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Every object (a lone `*`).
    Everything,
    /// These words in a row in one property; the last one only starts a word when `prefix`.
    Words {
        words: Vec<String>,
        prefix: bool,
    },
    /// This text anywhere in a property, inside words too.
    Inside(String),
    All(Vec<Expr>),
    Any(Vec<Expr>),
    Not(Box<Expr>),
}

impl Expr {
    /// Parses `phrase`, joining adjacent terms with `default`.
    pub fn parse(phrase: &str, default: Operator) -> Result<Expr, QueryError> {
        if phrase.len() > MAX_PHRASE_BYTES {
            return Err(QueryError::new(format!("a search phrase has at most {MAX_PHRASE_BYTES} bytes")));
        }
        let tokens = lex(phrase)?;
        if tokens.is_empty() {
            return Err(QueryError::new("the search phrase has no words to look for"));
        }
        if tokens.iter().filter(|t| matches!(t, Token::Word(..) | Token::Quoted(..))).count() > MAX_TERMS {
            return Err(QueryError::new(format!("a search phrase has at most {MAX_TERMS} terms")));
        }
        let mut parser = Parser { tokens, at: 0, default, depth: 0 };
        let expr = parser.or()?;
        if let Some(token) = parser.tokens.get(parser.at) {
            return Err(QueryError::new(format!("unexpected {} in the search phrase", token.describe())));
        }
        expr.ok_or_else(|| QueryError::new("the search phrase has no words to look for"))
    }

    /// Whether an object whose searched properties hold `texts` matches. This is the reference the store's index
    /// must agree with: words as FTS5's `unicode61` tokenizer splits them (letters and digits), compared without
    /// case or accents; `Inside` as a substring of one property's text, folded alike.
    pub fn matches(&self, texts: &[&str]) -> bool {
        match self {
            Expr::Everything => true,
            Expr::Words { words, prefix } => {
                let wanted: Vec<String> = words.iter().map(|w| fold(w)).collect();
                texts.iter().any(|text| contains_words(&words_of(&fold(text)), &wanted, *prefix))
            }
            Expr::Inside(inside) => {
                let inside = fold(inside);
                texts.iter().any(|text| fold(text).contains(&inside))
            }
            Expr::All(all) => all.iter().all(|e| e.matches(texts)),
            Expr::Any(any) => any.iter().any(|e| e.matches(texts)),
            Expr::Not(not) => !not.matches(texts),
        }
    }
}

/// Whether `words` holds `wanted` in a row, the last one as a prefix when `prefix`.
fn contains_words(words: &[String], wanted: &[String], prefix: bool) -> bool {
    if wanted.is_empty() || wanted.len() > words.len() {
        return false;
    }
    let last = wanted.len() - 1;
    words.windows(wanted.len()).any(|window| {
        window
            .iter()
            .zip(wanted)
            .enumerate()
            .all(|(i, (word, want))| if i == last && prefix { word.starts_with(want.as_str()) } else { word == want })
    })
}

/// `text` as the reference compares it: lower case, without accents (`Expr::Inside` looks into this).
pub fn folded(text: &str) -> String {
    fold(text)
}

/// The words of `text` as the reference compares them: folded, split into runs of letters and digits.
pub fn folded_words(text: &str) -> Vec<String> {
    words_of(&fold(text))
}

/// The words of `text`: its runs of letters and digits.
fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

/// Lower case without accents, for the reference evaluator: the common Latin letters with diacritics map to
/// their base letter, as FTS5's `remove_diacritics` does.
fn fold(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).map(base_letter).collect()
}

fn base_letter(c: char) -> char {
    const FROM: &str = "àáâãäåāăąçćĉċčďèéêëēĕėęěĝğġģĥìíîïĩīĭįĵķĺļľñńņňòóôõöōŏőŕŗřśŝşšţťùúûüũūŭůűųŵýÿŷźżž";
    const TO: &str = "aaaaaaaaacccccdeeeeeeeeegggghiiiiiiiijklllnnnnooooooooorrrssssttuuuuuuuuuuwyyyzzz";
    match FROM.chars().position(|f| f == c) {
        Some(i) => TO.chars().nth(i).unwrap_or(c),
        None => c,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    /// A word as typed, with its `*`s.
    Word(String),
    /// A quoted phrase, and whether a `*` follows its closing quote.
    Quoted(String, bool),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::And => "AND".into(),
            Token::Or => "OR".into(),
            Token::Not => "NOT".into(),
            Token::Word(word) => format!("{word:?}"),
            Token::Quoted(text, _) => format!("\"{text}\""),
        }
    }
}

fn lex(phrase: &str) -> Result<Vec<Token>, QueryError> {
    let mut tokens = Vec::new();
    let mut chars = phrase.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '-' | '+' => {
                chars.next();
                // `-` before a term negates it; alone, or before a space, it separates nothing.
                let term_follows = chars.peek().is_some_and(|n| !n.is_whitespace() && *n != ')');
                if c == '-' && term_follows {
                    tokens.push(Token::Not);
                }
            }
            '"' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => text.push(c),
                        None => return Err(QueryError::new("a quoted phrase in the search phrase is not closed")),
                    }
                }
                let prefix = chars.next_if_eq(&'*').is_some();
                tokens.push(Token::Quoted(text, prefix));
            }
            _ => {
                let mut word = String::new();
                while let Some(c) = chars.next_if(|c| !c.is_whitespace() && !matches!(c, '(' | ')' | '"')) {
                    word.push(c);
                }
                tokens.push(match word.as_str() {
                    "AND" | "&&" => Token::And,
                    "OR" | "||" => Token::Or,
                    "NOT" => Token::Not,
                    _ => Token::Word(word),
                });
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    default: Operator,
    depth: usize,
}

/// `None` is a term with no words in it (`&`, `...`), which the operators around it skip.
type Parsed = Result<Option<Expr>, QueryError>;

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn or(&mut self) -> Parsed {
        let mut any = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            any.push(self.and()?);
        }
        Ok(combine(any, Expr::Any))
    }

    fn and(&mut self) -> Parsed {
        let mut all = vec![self.sequence("AND or OR")?];
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            all.push(self.sequence("AND")?);
        }
        Ok(combine(all, Expr::All))
    }

    /// One or more terms side by side, joined by the default operator.
    fn sequence(&mut self, after: &str) -> Parsed {
        let mut terms = Vec::new();
        while matches!(self.peek(), Some(Token::Open | Token::Not | Token::Word(_) | Token::Quoted(..))) {
            terms.push(self.unary()?);
        }
        if terms.is_empty() {
            let found = self.peek().map_or_else(|| "the end".to_owned(), Token::describe);
            let message = format!("the search phrase needs a term before {found} (beside {after})");
            return Err(QueryError::new(message));
        }
        // As in Lucene, a negated term excludes whatever the default operator: `cat -dog` is cat without dog.
        let (negated, positive): (Vec<Option<Expr>>, Vec<Option<Expr>>) =
            terms.into_iter().partition(|term| matches!(term, Some(Expr::Not(_))));
        let positive = match self.default {
            Operator::And => combine(positive, Expr::All),
            Operator::Or => combine(positive, Expr::Any),
        };
        Ok(combine(std::iter::once(positive).chain(negated).collect(), Expr::All))
    }

    fn unary(&mut self) -> Parsed {
        let token = self.tokens[self.at].clone();
        self.at += 1;
        match token {
            Token::Not => {
                let inner = self.nested(Parser::unary)?;
                Ok(inner.map(|e| Expr::Not(Box::new(e))))
            }
            Token::Open => {
                let inner = self.nested(Parser::or)?;
                if self.peek() != Some(&Token::Close) {
                    return Err(QueryError::new("a parenthesis in the search phrase is not closed"));
                }
                self.at += 1;
                Ok(inner)
            }
            Token::Quoted(text, prefix) => {
                let words = words_of(&text);
                Ok((!words.is_empty()).then_some(Expr::Words { words, prefix }))
            }
            Token::Word(word) => term(&word),
            Token::Close | Token::And | Token::Or => unreachable!("sequence() only starts terms"),
        }
    }

    fn nested(&mut self, parse: fn(&mut Parser) -> Parsed) -> Parsed {
        if self.depth == MAX_DEPTH {
            return Err(QueryError::new(format!("the search phrase nests deeper than {MAX_DEPTH}")));
        }
        if self.peek().is_none() {
            return Err(QueryError::new("the search phrase ends where a term should follow"));
        }
        self.depth += 1;
        let parsed = parse(self);
        self.depth -= 1;
        parsed
    }
}

/// A word as typed: `*`s only at its ends.
fn term(word: &str) -> Parsed {
    let inner = word.trim_start_matches('*');
    let leading = inner.len() != word.len();
    let trimmed = inner.trim_end_matches('*');
    let trailing = trimmed.len() != inner.len();
    if trimmed.contains('*') {
        return Err(QueryError::new(format!("{word:?}: a * stands only at the start or the end of a word")));
    }
    if trimmed.is_empty() {
        return Ok((leading || trailing).then_some(Expr::Everything));
    }
    if leading && trimmed.chars().count() >= MIN_INSIDE_CHARS {
        return Ok(Some(Expr::Inside(trimmed.to_owned())));
    }
    let words = words_of(trimmed);
    Ok((!words.is_empty()).then_some(Expr::Words { words, prefix: trailing || leading }))
}

/// The parsed terms joined by `join`; one alone stands for itself.
fn combine(parts: Vec<Option<Expr>>, join: fn(Vec<Expr>) -> Expr) -> Option<Expr> {
    let mut parts: Vec<Expr> = parts.into_iter().flatten().collect();
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => {
            let flat = parts
                .into_iter()
                .flat_map(|part| match (part, join(Vec::new())) {
                    (Expr::All(inner), Expr::All(_)) | (Expr::Any(inner), Expr::Any(_)) => inner,
                    (part, _) => vec![part],
                })
                .collect();
            Some(join(flat))
        }
    }
}

#[cfg(test)]
mod tests;
