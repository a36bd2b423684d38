//! Unit tests of the PostgreSQL compiler's shapes; `tests/postgres_agreement.rs` checks what they select.

use serde_json::json;

use super::*;

fn sql(q: serde_json::Value) -> Sql {
    compile_in(&Filter::parse(&q).unwrap(), &Layout::plain("doc"), 1).unwrap()
}

fn indexed(q: serde_json::Value, arrays: bool) -> Sql {
    let indexed = [Indexed { property: "n".to_owned(), arrays }];
    let layout = Layout { doc: "doc", reserved: None, indexed: &indexed };
    compile_in(&Filter::parse(&q).unwrap(), &layout, 3).unwrap()
}

#[test]
fn empty_filter_is_true() {
    assert_eq!(sql(json!({})), Sql { where_clause: "TRUE".to_owned(), binds: vec![] });
}

#[test]
fn string_equality() {
    let res = sql(json!({"username": "john"}));
    assert_eq!(
        res.where_clause,
        "(((((CASE WHEN jsonb_typeof((doc -> 'username')) = 'string' THEN (doc -> 'username') #>> '{}' END) \
         COLLATE \"C\") = $1::text) IS TRUE) OR EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN \
         jsonb_typeof((doc -> 'username')) = 'array' THEN (doc -> 'username') END) AS e1(v) WHERE \
         ((((CASE WHEN jsonb_typeof(e1.v) = 'string' THEN e1.v #>> '{}' END) COLLATE \"C\") = $2::text) IS TRUE)))"
    );
    assert_eq!(res.binds, [Bind::Text("john".into()), Bind::Text("john".into())]);
}

#[test]
fn values_are_bound_never_spliced() {
    let evil = "x' OR 1=1 --";
    let res = sql(json!({"a": evil, "b": {"$regex": evil}, "c": {"$gt": evil}, "d": {"e": evil}}));
    assert!(!res.where_clause.contains("OR 1=1"), "{}", res.where_clause);
    assert_eq!(res.binds.iter().filter(|it| **it == Bind::Text(evil.into())).count(), 6);
}

#[test]
fn placeholders_start_at_first() {
    let res = indexed(json!({"n": {"$gte": 2, "$lt": 2.5}}), false);
    assert!(res.where_clause.contains("$3::float8") && res.where_clause.contains("$4::float8"), "{res:?}");
    assert_eq!(res.binds, [Bind::Real(2.0), Bind::Real(2.5)]);
}

#[test]
fn big_integers_compare_exactly_after_a_float_range() {
    let res = indexed(json!({"n": 9_007_199_254_740_993_i64}), false);
    assert_eq!(res.binds, [Bind::Real(9_007_199_254_740_992.0), Bind::Int(9_007_199_254_740_993)]);
    assert!(res.where_clause.contains(" = $3::float8 AND (CASE WHEN scale("), "{}", res.where_clause);
}

#[test]
fn indexed_conditions_are_spelled_on_the_key_terms() {
    let [rank, f8, _, text] = key_terms("(doc -> 'n')");
    let res = indexed(json!({"n": {"$in": [1, "x", true, null]}}), false);
    assert_eq!(
        res.where_clause,
        format!(
            "((({rank} = 0) OR ({rank} = 1 AND {f8} IN ($3::float8))) OR (({rank} = 2 AND {text} IN ($4::text)) OR \
             ({rank} = 5 AND {text} IN ('true'))))"
        )
    );
    let res = indexed(json!({"n": {"$regex": "^ab"}}), false);
    assert_eq!(res.where_clause, format!("({rank} = 2 AND {text} >= $3::text AND {text} < $4::text)"));
    assert_eq!(indexed(json!({"n": {"$ne": null}}), false).where_clause, format!("({rank} > 0)"));
    assert!(indexed(json!({"n": 1}), true).where_clause.contains(&format!("({rank} = 4 AND EXISTS")));
}

#[test]
fn empty_lists() {
    assert_eq!(sql(json!({"a": {"$in": []}})).where_clause, "FALSE");
    assert_eq!(sql(json!({"a": {"$nin": []}})).where_clause, "(NOT FALSE)");
    assert_eq!(sql(json!({"a": {"$all": []}})).where_clause, "FALSE");
}

#[test]
fn strings_holding_nul_equal_nothing() {
    assert_eq!(sql(json!({"a": "\u{0}"})).where_clause.matches("FALSE").count(), 2);
    assert_eq!(sql(json!({"a": {"$gt": "a\u{0}b"}})).binds, [Bind::Text("a".into()), Bind::Text("a".into())]);
}

#[test]
fn order_by_terms() {
    let sort = Sort::parse(&json!([{"sortBy": "title", "direction": "desc"}])).unwrap();
    let none = Filter { clauses: vec![] };
    let terms = order_by_in(&sort, &none, &Layout::plain("o.doc"), &["o.id"]);
    assert!(terms.starts_with("(CASE jsonb_typeof((o.doc -> 'title')) WHEN 'number' THEN 1"), "{terms}");
    assert!(terms.ends_with("COLLATE \"C\") DESC NULLS LAST, o.id DESC"), "{terms}");
    assert_eq!(order_by_in(&Sort { keys: vec![] }, &none, &Layout::plain("doc"), &[]), "");
    let sort = Sort::parse(&json!([{"sortBy": "createdAt"}, {"sortBy": "id"}])).unwrap();
    let layout = Layout { doc: "doc", reserved: Some(|ms| ms.to_string()), indexed: &[] };
    assert_eq!(
        order_by_in(&sort, &none, &layout, &["created_ms", "id"]),
        "created_ms ASC, id COLLATE \"C\" ASC, id ASC"
    );
}

#[test]
fn key_index_terms_are_the_order_by_expressions() {
    let sort = Sort::parse(&json!([{"sortBy": "n", "direction": "asc"}])).unwrap();
    let index = key_index_terms("n", "doc");
    let order = order_by_in(&sort, &Filter { clauses: vec![] }, &Layout::plain("doc"), &[]);
    let terms: Vec<String> = key_terms("(doc -> 'n')").into_iter().collect();
    assert_eq!(order, terms.iter().map(|it| format!("{it} ASC NULLS FIRST")).collect::<Vec<_>>().join(", "));
    assert_eq!(index, terms.iter().map(|it| format!("({it}) NULLS FIRST")).collect::<Vec<_>>().join(", "));
}

#[test]
fn untranslatable_regexes_are_errors() {
    let q = json!({"a": {"$regex": "\\w".repeat(100)}});
    let e = compile_in(&Filter::parse(&q).unwrap(), &Layout::plain("doc"), 1).unwrap_err();
    assert!(e.message.contains("too large"), "{e}");
}

#[test]
fn identifiers_are_checked() {
    let none = Filter { clauses: vec![] };
    assert!(std::panic::catch_unwind(|| compile_in(&none, &Layout::plain("doc; DROP TABLE x"), 1)).is_err());
    assert!(std::panic::catch_unwind(|| key_index_terms("a'", "doc")).is_err());
    let sort = Sort { keys: vec![] };
    assert!(std::panic::catch_unwind(|| order_by_in(&sort, &none, &Layout::plain("doc"), &["id desc"])).is_err());
}
