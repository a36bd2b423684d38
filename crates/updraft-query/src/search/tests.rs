//! The phrase parser, the reference evaluator and the FTS5 text, on their own.

use super::fts5::{Rows, Scope, phrases, words_match};
use super::{Expr, Operator};

fn words(list: &[&str], prefix: bool) -> Expr {
    Expr::Words { words: list.iter().map(|w| (*w).to_owned()).collect(), prefix }
}

fn parse(phrase: &str) -> Expr {
    Expr::parse(phrase, Operator::Or).unwrap_or_else(|e| panic!("{phrase:?}: {e}"))
}

#[test]
fn terms_operators_and_precedence() {
    assert_eq!(parse("cat"), words(&["cat"], false));
    assert_eq!(parse("cat dog"), Expr::Any(vec![words(&["cat"], false), words(&["dog"], false)]));
    assert_eq!(
        Expr::parse("big cat OR dog", Operator::And).unwrap(),
        Expr::Any(vec![Expr::All(vec![words(&["big"], false), words(&["cat"], false)]), words(&["dog"], false)])
    );
    assert_eq!(
        parse("a OR b AND c"),
        Expr::Any(vec![words(&["a"], false), Expr::All(vec![words(&["b"], false), words(&["c"], false)])])
    );
    assert_eq!(
        parse("(a OR b) AND NOT c"),
        Expr::All(vec![
            Expr::Any(vec![words(&["a"], false), words(&["b"], false)]),
            Expr::Not(Box::new(words(&["c"], false)))
        ])
    );
    assert_eq!(parse("cat -dog"), Expr::All(vec![words(&["cat"], false), Expr::Not(Box::new(words(&["dog"], false)))]));
    assert_eq!(
        parse("cat bird NOT dog"),
        Expr::All(vec![
            Expr::Any(vec![words(&["cat"], false), words(&["bird"], false)]),
            Expr::Not(Box::new(words(&["dog"], false)))
        ])
    );
    assert_eq!(parse("+cat"), words(&["cat"], false));
    // Lower case operators are words.
    assert_eq!(
        parse("cats and dogs"),
        Expr::Any(vec![words(&["cats"], false), words(&["and"], false), words(&["dogs"], false)])
    );
}

#[test]
fn phrases_wildcards_and_separators() {
    assert_eq!(parse("\"black cat\""), words(&["black", "cat"], false));
    assert_eq!(parse("\"black ca\"*"), words(&["black", "ca"], true));
    assert_eq!(parse("e-mail"), words(&["e", "mail"], false));
    assert_eq!(parse("cat*"), words(&["cat"], true));
    assert_eq!(parse("*cat*"), Expr::Inside("cat".into()));
    assert_eq!(parse("*cat"), Expr::Inside("cat".into()));
    assert_eq!(parse("*ca*"), words(&["ca"], true));
    assert_eq!(parse("*"), Expr::Everything);
    // A term with no words is skipped by the operators around it.
    assert_eq!(parse("cat AND &"), words(&["cat"], false));
    assert_eq!(
        parse("where is it?"),
        Expr::Any(vec![words(&["where"], false), words(&["is"], false), words(&["it"], false)])
    );
}

#[test]
fn bad_phrases_are_refused_with_a_reason() {
    for (phrase, reason) in [
        ("", "no words"),
        ("&&&", "no words"),
        ("\"open", "not closed"),
        ("(cat", "not closed"),
        ("cat)", "unexpected"),
        ("cat AND", "needs a term"),
        ("OR cat", "needs a term"),
        ("NOT", "ends where a term"),
        ("c*t", "start or the end"),
    ] {
        let err = Expr::parse(phrase, Operator::Or).expect_err(phrase);
        assert!(err.message.contains(reason), "{phrase:?}: {}", err.message);
    }
    let deep = format!("{}cat{}", "(".repeat(40), ")".repeat(40));
    assert!(Expr::parse(&deep, Operator::Or).unwrap_err().message.contains("nests deeper"));
    let many = vec!["w"; 65].join(" ");
    assert!(Expr::parse(&many, Operator::Or).unwrap_err().message.contains("at most 64 terms"));
    assert!(Expr::parse(&"a".repeat(1001), Operator::Or).unwrap_err().message.contains("bytes"));
    assert!(Operator::parse("xor").is_err());
    assert_eq!(Operator::parse("and").unwrap(), Operator::And);
}

#[test]
fn the_reference_matches_words_prefixes_and_text_inside_words() {
    let texts = ["The Quick brown fox", "Café au lait"];
    assert!(parse("quick").matches(&texts));
    assert!(parse("cafe").matches(&texts));
    assert!(parse("CAFÉ").matches(&texts));
    assert!(parse("\"quick brown\"").matches(&texts));
    assert!(!parse("\"brown quick\"").matches(&texts));
    assert!(parse("qui*").matches(&texts));
    assert!(!parse("uick").matches(&texts));
    assert!(parse("*uick*").matches(&texts));
    assert!(parse("*own fo*").matches(&texts));
    assert!(!parse("quick AND -fox").matches(&texts));
    assert!(parse("NOT dog").matches(&texts));
    // A phrase lies within one property.
    assert!(!parse("\"fox cafe\"").matches(&texts));
}

#[test]
fn fts5_text_quotes_every_user_string() {
    let columns = vec!["p0".to_owned(), "p2".to_owned()];
    assert_eq!(
        words_match(&parse("cat* -\"x y\""), &columns).unwrap(),
        "(({p0 p2} : \"cat\" *)) NOT ({p0 p2} : \"x y\")"
    );
    // What FTS5 cannot say alone: every row, a lone negation, text inside words.
    for phrase in ["*", "NOT cat", "cat OR -dog", "*cat* dog"] {
        assert_eq!(words_match(&parse(phrase), &columns), None, "{phrase}");
    }
    let scope = Scope { object_rowid: "rowid >> 6", condition: "rowid BETWEEN 64 AND 127" };
    assert_eq!(phrases(&parse("*cat* AND dog"), &columns), None);
    let rows = Rows::of(&parse("*cat* AND dog"), &columns, "b1", "objects.todos", scope);
    assert_eq!(rows.binds, ["{p0 p2} : \"cat\"", "{p0 p2} : \"dog\""]);
    assert!(rows.sql.contains(" INTERSECT "), "{}", rows.sql);
    assert!(
        rows.sql
            .contains("SELECT rowid >> 6 AS rowid FROM search_grams WHERE search_grams MATCH ? AND rowid BETWEEN 64")
    );
    let rows = Rows::of(&parse("NOT cat"), &columns, "b1", "objects.todos", scope);
    assert_eq!(rows.binds, ["b1", "objects.todos", "{p0 p2} : \"cat\""]);
    assert!(rows.sql.contains(" EXCEPT "), "{}", rows.sql);
}

#[test]
fn phrases_come_in_the_order_fts5_numbers_them() {
    let columns = vec!["p1".to_owned()];
    for phrase in ["cat", "cat dog", "a AND (b OR \"c d\"*) AND NOT e AND f", "(a -b) OR (c NOT d)", "-x y"] {
        let Some(text) = words_match(&parse(phrase), &columns) else { continue };
        let each = phrases(&parse(phrase), &columns).unwrap();
        // Each phrase is in the text, after the one before it.
        let mut at = 0;
        for one in &each {
            let found = text[at..].find(one.as_str()).unwrap_or_else(|| panic!("{one} after {at} in {text}"));
            at += found + one.len();
        }
        assert_eq!(each.len(), text.matches(" : ").count(), "{text}");
    }
    assert_eq!(phrases(&parse("a AND -b AND c"), &columns).unwrap(), ["{p1} : \"a\"", "{p1} : \"c\"", "{p1} : \"b\""]);
}
