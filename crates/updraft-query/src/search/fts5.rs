//! A phrase as SQLite FTS5 query text, for the two full-text tables the store keeps (docs/search.md):
//! `search_words` (`unicode61`, one column per searched property) for words, phrases and prefixes, and
//! `search_grams` (`trigram`, the same columns) for text inside words. Neither names the collection of a row: the
//! store joins `objects` for that.
//!
//! All user text reaches FTS5 inside double quotes (a quote doubled), so no operator or column name can be
//! smuggled in; column names come from the store's slot numbers.

use super::Expr;

/// FTS5 text selecting the rows of `search_words` that `expr` matches in `columns` (`p0`-style names), or `None`
/// when FTS5 cannot say it alone: text inside words ([`Expr::Inside`]), or every row or a negation with nothing
/// positive beside it (FTS5's `NOT` is binary). [`Rows`] combines those with set operations instead.
pub fn words_match(expr: &Expr, columns: &[String]) -> Option<String> {
    match expr {
        Expr::Everything | Expr::Inside(_) | Expr::Not(_) => None,
        Expr::Words { words, prefix } => Some(phrase(words, *prefix, columns)),
        Expr::All(all) => {
            let (negated, positive): (Vec<&Expr>, Vec<&Expr>) = all.iter().partition(|e| matches!(e, Expr::Not(_)));
            if positive.is_empty() {
                return None;
            }
            let parts: Option<Vec<String>> =
                positive.iter().map(|e| words_match(e, columns).map(|m| format!("({m})"))).collect();
            let mut text = parts?.join(" AND ");
            for not in negated {
                let Expr::Not(inner) = not else { unreachable!("partitioned") };
                text = format!("({text}) NOT ({})", words_match(inner, columns)?);
            }
            Some(text)
        }
        Expr::Any(any) => {
            let parts: Option<Vec<String>> =
                any.iter().map(|e| words_match(e, columns).map(|m| format!("({m})"))).collect();
            Some(parts?.join(" OR "))
        }
    }
}

/// Each phrase of [`words_match`]'s text on its own, in the order FTS5 numbers them (their order in the text):
/// what a phrase's document frequency is known by (`updraft_rank` keeps them a while). `None` where
/// `words_match` is.
pub fn phrases(expr: &Expr, columns: &[String]) -> Option<Vec<String>> {
    words_match(expr, columns)?;
    let mut out = Vec::new();
    collect_phrases(expr, columns, &mut out);
    Some(out)
}

fn collect_phrases(expr: &Expr, columns: &[String], out: &mut Vec<String>) {
    match expr {
        Expr::Words { words, prefix } => out.push(phrase(words, *prefix, columns)),
        // As `words_match` writes them: the positive parts, then the negated ones.
        Expr::All(all) => {
            let (negated, positive): (Vec<&Expr>, Vec<&Expr>) = all.iter().partition(|e| matches!(e, Expr::Not(_)));
            positive.into_iter().chain(negated).for_each(|e| collect_phrases(e, columns, out));
        }
        Expr::Any(any) => any.iter().for_each(|e| collect_phrases(e, columns, out)),
        Expr::Not(inner) => collect_phrases(inner, columns, out),
        Expr::Everything | Expr::Inside(_) => {}
    }
}

fn phrase(words: &[String], prefix: bool, columns: &[String]) -> String {
    let star = if prefix { " *" } else { "" };
    format!("{{{}}} : {}{star}", columns.join(" "), quoted(&words.join(" ")))
}

/// FTS5 text selecting the rows of `search_grams` whose `columns` hold `inside`.
pub fn grams_match(inside: &str, columns: &[String]) -> String {
    format!("{{{}}} : {}", columns.join(" "), quoted(inside))
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// How the store's full-text rows name their object and collection: `object_rowid` is the SQL expression of a
/// row's object rowid (in `objects`), `condition` the SQL condition keeping the rows of the collection searched.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub object_rowid: &'a str,
    pub condition: &'a str,
}

/// A phrase FTS5 cannot say alone, as an SQL compound of object rowids of the collection: each part
/// [`words_match`] says is one match of `search_words`, each text inside words one match of `search_grams`,
/// every row of the collection is its rows in `objects`, and the boolean operators are `INTERSECT`, `UNION` and
/// `EXCEPT`.
#[derive(Debug, Default)]
pub struct Rows {
    pub sql: String,
    /// In order: FTS5 texts, and the backend and object type after each read of the collection's rows.
    pub binds: Vec<String>,
}

impl Rows {
    pub fn of(expr: &Expr, columns: &[String], backend: &str, object_type: &str, scope: Scope<'_>) -> Rows {
        let mut rows = Rows::default();
        rows.sql = rows.compound(expr, columns, (backend, object_type), scope);
        rows
    }

    fn compound(&mut self, expr: &Expr, columns: &[String], at: (&str, &str), scope: Scope<'_>) -> String {
        let (backend, object_type) = at;
        let matched = |table: &str| {
            format!("SELECT {} AS rowid FROM {table} WHERE {table} MATCH ? AND {}", scope.object_rowid, scope.condition)
        };
        if let Some(text) = words_match(expr, columns) {
            self.binds.push(text);
            return matched("search_words");
        }
        let part = |rows: &mut Rows, e: &Expr| format!("SELECT rowid FROM ({})", rows.compound(e, columns, at, scope));
        match expr {
            Expr::Everything => {
                self.binds.extend([backend.to_owned(), object_type.to_owned()]);
                "SELECT rowid FROM objects WHERE backend = ? AND object_type = ?".to_owned()
            }
            Expr::Inside(inside) => {
                self.binds.push(grams_match(inside, columns));
                matched("search_grams")
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
            Expr::Words { .. } => unreachable!("words_match says every word"),
        }
    }
}
