//! A phrase as SQLite FTS5 query text, for the two full-text tables the store keeps (docs/search.md):
//! `search_words` (`unicode61`, one column `scope` naming the collection, then one column per searchable
//! property) for words, phrases and prefixes, and `search_grams` (`trigram`, the property columns only) for text
//! inside words.
//!
//! All user text reaches FTS5 inside double quotes (a quote doubled), so no operator or column name can be
//! smuggled in; column names come from the store's slot numbers.

use super::Expr;

/// The columns of one collection's searched properties and the token that names the collection.
#[derive(Debug, Clone)]
pub struct Columns<'a> {
    /// `{p0 p3}`-style column names.
    pub properties: &'a [String],
    /// The collection's token in the `scope` column ([`scope_token`]).
    pub scope: &'a str,
}

/// The token of the `scope` column of a collection's rows: `s` and the hex of `<backend>.<object type>`, one
/// token to `unicode61` whatever the names hold. The store's triggers write it with SQL that must agree:
/// `'s' || lower(hex(backend || '.' || object_type))`.
pub fn scope_token(backend: &str, object_type: &str) -> String {
    use std::fmt::Write;
    let mut token = String::from("s");
    for byte in backend.bytes().chain([b'.']).chain(object_type.bytes()) {
        let _ = write!(token, "{byte:02x}");
    }
    token
}

/// FTS5 text selecting the rows of `search_words` of the collection that `expr` matches. `expr` must not hold
/// [`Expr::Inside`] (see [`Expr::has_inside`]); [`Rows`] combines those with set operations instead.
pub fn words_match(expr: &Expr, columns: &Columns<'_>) -> String {
    format!("{} AND ({})", everything(columns), words(expr, columns))
}

/// FTS5 text selecting the rows of `search_grams` whose searched properties hold `inside`.
pub fn grams_match(inside: &str, columns: &Columns<'_>) -> String {
    format!("{{{}}} : {}", columns.properties.join(" "), quoted(inside))
}

fn everything(columns: &Columns<'_>) -> String {
    format!("scope : {}", quoted(columns.scope))
}

fn words(expr: &Expr, columns: &Columns<'_>) -> String {
    match expr {
        Expr::Everything => everything(columns),
        Expr::Words { words, prefix } => {
            let star = if *prefix { " *" } else { "" };
            format!("{{{}}} : {}{star}", columns.properties.join(" "), quoted(&words.join(" ")))
        }
        Expr::Inside(_) => unreachable!("words_match is not given text inside words"),
        Expr::All(all) => {
            let (negated, positive): (Vec<&Expr>, Vec<&Expr>) = all.iter().partition(|e| matches!(e, Expr::Not(_)));
            let mut text = if positive.is_empty() {
                everything(columns)
            } else {
                positive.iter().map(|e| format!("({})", words(e, columns))).collect::<Vec<_>>().join(" AND ")
            };
            for not in negated {
                let Expr::Not(inner) = not else { unreachable!("partitioned") };
                text = format!("({text}) NOT ({})", words(inner, columns));
            }
            text
        }
        Expr::Any(any) => any.iter().map(|e| format!("({})", words(e, columns))).collect::<Vec<_>>().join(" OR "),
        // FTS5's NOT is binary: what every row has, but not this.
        Expr::Not(inner) => format!("({}) NOT ({})", everything(columns), words(inner, columns)),
    }
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// A phrase with text inside words, as an SQL compound of row ids: each part without such text is one match of
/// `search_words`, each text inside words one match of `search_grams` joined to its collection's rows, and the
/// boolean operators are `INTERSECT`, `UNION` and `EXCEPT`.
#[derive(Debug, Default)]
pub struct Rows {
    pub sql: String,
    /// In order: FTS5 texts and, after each `search_grams` match, the backend and object type.
    pub binds: Vec<String>,
}

impl Rows {
    pub fn of(expr: &Expr, columns: &Columns<'_>, backend: &str, object_type: &str) -> Rows {
        let mut rows = Rows::default();
        rows.sql = rows.compound(expr, columns, backend, object_type);
        rows
    }

    fn compound(&mut self, expr: &Expr, columns: &Columns<'_>, backend: &str, object_type: &str) -> String {
        if !expr.has_inside() {
            self.binds.push(words_match(expr, columns));
            return "SELECT rowid FROM search_words WHERE search_words MATCH ?".to_owned();
        }
        let part = |rows: &mut Rows, e: &Expr| {
            format!("SELECT rowid FROM ({})", rows.compound(e, columns, backend, object_type))
        };
        match expr {
            Expr::Inside(inside) => {
                self.binds.extend([grams_match(inside, columns), backend.to_owned(), object_type.to_owned()]);
                "SELECT search_grams.rowid FROM search_grams JOIN objects ON objects.rowid = search_grams.rowid \
                 WHERE search_grams MATCH ? AND objects.backend = ? AND objects.object_type = ?"
                    .to_owned()
            }
            Expr::All(all) => {
                let (negated, positive): (Vec<&Expr>, Vec<&Expr>) = all.iter().partition(|e| matches!(e, Expr::Not(_)));
                let mut sql = if positive.is_empty() {
                    part(self, &Expr::Everything)
                } else {
                    positive.iter().map(|e| part(self, e)).collect::<Vec<_>>().join(" INTERSECT ")
                };
                for not in negated {
                    let Expr::Not(inner) = not else { unreachable!("partitioned") };
                    sql = format!("SELECT rowid FROM ({sql}) EXCEPT {}", part(self, inner));
                }
                sql
            }
            Expr::Any(any) => any.iter().map(|e| part(self, e)).collect::<Vec<_>>().join(" UNION "),
            Expr::Not(inner) => {
                let everything = part(self, &Expr::Everything);
                format!("{everything} EXCEPT {}", part(self, inner))
            }
            Expr::Everything | Expr::Words { .. } => unreachable!("has no text inside words"),
        }
    }
}
