//! JSON (`q` and `sort`) to AST, with every check the evaluator and compilers rely on.

use serde_json::{Map, Value};

use crate::{
    QueryError,
    ast::{
        Clause, CmpOp, Direction, ElemMatch, Filter, Key, Literal, Op, Path, Pattern, Scalar, Sort, SortKey, is_segment,
    },
};

/// How deep filters, operator objects and literals may nest; bounds recursion here and SQL expression depth.
pub const MAX_DEPTH: usize = 32;
/// How many conditions and literal values one filter may hold; bounds SQL size and bind count.
pub const MAX_TERMS: usize = 1024;
/// Longest accepted `$regex` pattern, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Longest accepted `sort`.
pub const MAX_SORT_KEYS: usize = 8;

impl Filter {
    /// Parses a `q` document such as `{"completed": true, "count": {"$gt": 5}}`.
    pub fn parse(q: &Value) -> Result<Filter, QueryError> {
        let Value::Object(map) = q else {
            return Err(QueryError::new("q must be a JSON object"));
        };
        Parser { n_terms: 0 }.filter(map, 1)
    }
}

impl Sort {
    /// Parses `[{"sortBy": "title", "direction": "asc"}, ...]`; `direction` defaults to `asc`.
    pub fn parse(sort: &Value) -> Result<Sort, QueryError> {
        let Value::Array(items) = sort else {
            return Err(QueryError::new("sort must be a JSON array"));
        };
        if items.len() > MAX_SORT_KEYS {
            return Err(QueryError::new(format!("sort has more than {MAX_SORT_KEYS} keys")));
        }
        let keys = items.iter().map(sort_key).collect::<Result<_, _>>()?;
        Ok(Sort { keys })
    }
}

fn sort_key(item: &Value) -> Result<SortKey, QueryError> {
    let Value::Object(map) = item else {
        return Err(QueryError::new("each sort key must be an object with sortBy"));
    };
    if let Some(key) = map.keys().find(|it| *it != "sortBy" && *it != "direction") {
        return Err(QueryError::new(format!("unknown sort property {key}")));
    }
    let path = match map.get("sortBy") {
        Some(Value::String(it)) => parse_path(it)?,
        _ => return Err(QueryError::new("sortBy must be a string")),
    };
    let direction = match map.get("direction") {
        None => Direction::Asc,
        Some(Value::String(it)) if it == "asc" => Direction::Asc,
        Some(Value::String(it)) if it == "desc" => Direction::Desc,
        Some(_) => {
            return Err(QueryError::new("direction must be \"asc\" or \"desc\"").with_property(path.to_string()));
        }
    };
    Ok(SortKey { path, direction })
}

pub(crate) fn parse_path(dotted: &str) -> Result<Path, QueryError> {
    let segments: Vec<String> = dotted.split('.').map(str::to_owned).collect();
    if !segments.iter().all(|it| is_segment(it)) {
        return Err(QueryError::new(format!(
            "invalid field path {dotted:?}: segments must be non-empty and use only A-Z, a-z, 0-9 and _"
        ))
        .with_property(dotted));
    }
    if segments.len() > MAX_DEPTH {
        return Err(QueryError::new(format!("field path {dotted:?} is too long")).with_property(dotted));
    }
    Ok(Path::new(segments))
}

struct Parser {
    n_terms: usize,
}

impl Parser {
    fn filter(&mut self, map: &Map<String, Value>, depth: usize) -> Result<Filter, QueryError> {
        check_depth(depth)?;
        let mut clauses = Vec::with_capacity(map.len());
        for (key, value) in map {
            let clause = match key.as_str() {
                "$and" => Clause::And(self.filters(key, value, depth)?),
                "$or" => Clause::Or(self.filters(key, value, depth)?),
                "$nor" => Clause::Nor(self.filters(key, value, depth)?),
                _ if key.starts_with('$') => {
                    return Err(QueryError::new(format!("unknown operator {key}")));
                }
                _ => {
                    let path = parse_path(key)?;
                    let ops = self.condition(value, depth + 1).map_err(|e| e.or_property(key))?;
                    Clause::Field { path, ops }
                }
            };
            clauses.push(clause);
        }
        Ok(Filter { clauses })
    }

    /// The operand of `$and`, `$or`, `$nor`: a non-empty array of filters.
    fn filters(&mut self, op: &str, value: &Value, depth: usize) -> Result<Vec<Filter>, QueryError> {
        let items = match value {
            Value::Array(items) if !items.is_empty() => items,
            _ => return Err(QueryError::new(format!("{op} needs a non-empty array of filters"))),
        };
        items
            .iter()
            .map(|item| match item {
                Value::Object(map) => self.filter(map, depth + 1),
                _ => Err(QueryError::new(format!("{op} needs a non-empty array of filters"))),
            })
            .collect()
    }

    /// The value of a field key: either an operator object or a literal for implicit equality.
    fn condition(&mut self, value: &Value, depth: usize) -> Result<Vec<Op>, QueryError> {
        match operator_object(value)? {
            Some(map) => self.ops(map, depth),
            None => Ok(vec![Op::Eq(self.literal(value, depth)?)]),
        }
    }

    fn ops(&mut self, map: &Map<String, Value>, depth: usize) -> Result<Vec<Op>, QueryError> {
        check_depth(depth)?;
        let mut ops = Vec::with_capacity(map.len());
        for (key, operand) in map {
            let op = match key.as_str() {
                "$eq" => Op::Eq(self.literal(operand, depth + 1)?),
                "$ne" => Op::Not(vec![Op::Eq(self.literal(operand, depth + 1)?)]),
                "$gt" => Op::Cmp(CmpOp::Gt, self.scalar(key, operand)?),
                "$gte" => Op::Cmp(CmpOp::Gte, self.scalar(key, operand)?),
                "$lt" => Op::Cmp(CmpOp::Lt, self.scalar(key, operand)?),
                "$lte" => Op::Cmp(CmpOp::Lte, self.scalar(key, operand)?),
                "$in" => Op::In(self.literals(key, operand, depth)?),
                "$nin" => Op::Not(vec![Op::In(self.literals(key, operand, depth)?)]),
                "$all" => Op::All(self.literals(key, operand, depth)?),
                "$exists" => match operand {
                    Value::Bool(it) => Op::Exists(*it),
                    _ => return Err(QueryError::new("$exists needs true or false")),
                },
                "$size" => match operand.as_u64() {
                    Some(n) => Op::Size(n),
                    None => return Err(QueryError::new("$size needs a non-negative integer")),
                },
                "$regex" => Op::Regex(pattern(operand, map.get("$options"))?),
                "$options" if map.contains_key("$regex") => continue,
                "$options" => return Err(QueryError::new("$options needs a sibling $regex")),
                "$elemMatch" => Op::ElemMatch(self.elem_match(operand, depth + 1)?),
                "$not" => match operator_object(operand)? {
                    Some(inner) => Op::Not(self.ops(inner, depth + 1)?),
                    None => return Err(QueryError::new("$not needs an object of operators")),
                },
                _ => return Err(QueryError::new(format!("unknown operator {key}"))),
            };
            self.count_term()?;
            ops.push(op);
        }
        Ok(ops)
    }

    fn elem_match(&mut self, operand: &Value, depth: usize) -> Result<ElemMatch, QueryError> {
        let map = match operand {
            Value::Object(map) if !map.is_empty() => map,
            _ => return Err(QueryError::new("$elemMatch needs a non-empty object")),
        };
        let is_logical = |key: &str| matches!(key, "$and" | "$or" | "$nor");
        let all_ops = map.keys().all(|it| it.starts_with('$') && !is_logical(it));
        if all_ops {
            return Ok(ElemMatch::Ops(self.ops(map, depth)?));
        }
        if let Some(key) = map.keys().find(|it| it.starts_with('$') && !is_logical(it)) {
            return Err(QueryError::new(format!("$elemMatch cannot mix {key} with field conditions")));
        }
        Ok(ElemMatch::Filter(self.filter(map, depth)?))
    }

    fn literals(&mut self, op: &str, operand: &Value, depth: usize) -> Result<Vec<Literal>, QueryError> {
        let Value::Array(items) = operand else {
            return Err(QueryError::new(format!("{op} needs an array")));
        };
        items.iter().map(|it| self.literal(it, depth + 1)).collect()
    }

    fn literal(&mut self, value: &Value, depth: usize) -> Result<Literal, QueryError> {
        check_depth(depth)?;
        self.count_term()?;
        let res = match value {
            Value::Null => Literal::Null,
            Value::Bool(it) => Literal::Bool(*it),
            Value::Number(it) => Literal::Number(it.clone()),
            Value::String(it) => Literal::String(it.clone()),
            Value::Array(items) => {
                Literal::Array(items.iter().map(|it| self.literal(it, depth + 1)).collect::<Result<_, _>>()?)
            }
            Value::Object(map) => {
                let mut fields = Vec::with_capacity(map.len());
                for (key, value) in map {
                    if !is_segment(key) {
                        return Err(QueryError::new(format!(
                            "invalid key {key:?} in an object value: keys must use only A-Z, a-z, 0-9 and _"
                        )));
                    }
                    fields.push((Key::new(key.clone()), self.literal(value, depth + 1)?));
                }
                Literal::Object(fields)
            }
        };
        Ok(res)
    }

    fn scalar(&mut self, op: &str, operand: &Value) -> Result<Scalar, QueryError> {
        self.count_term()?;
        match operand {
            Value::Number(it) => Ok(Scalar::Number(it.clone())),
            Value::String(it) => Ok(Scalar::String(it.clone())),
            _ => Err(QueryError::new(format!("{op} needs a number or a string"))),
        }
    }

    fn count_term(&mut self) -> Result<(), QueryError> {
        self.n_terms += 1;
        if self.n_terms > MAX_TERMS {
            return Err(QueryError::new(format!("query has more than {MAX_TERMS} conditions")));
        }
        Ok(())
    }
}

/// `Some` if `value` is an object whose keys are all operators, `None` if it is a literal.
fn operator_object(value: &Value) -> Result<Option<&Map<String, Value>>, QueryError> {
    let Value::Object(map) = value else { return Ok(None) };
    let n_ops = map.keys().filter(|it| it.starts_with('$')).count();
    match n_ops {
        0 => Ok(None),
        n if n == map.len() => Ok(Some(map)),
        _ => Err(QueryError::new("cannot mix operators and fields in one object")),
    }
}

fn pattern(regex: &Value, options: Option<&Value>) -> Result<Pattern, QueryError> {
    let Value::String(regex) = regex else {
        return Err(QueryError::new("$regex needs a string"));
    };
    if regex.len() > MAX_PATTERN_LEN {
        return Err(QueryError::new(format!("$regex is longer than {MAX_PATTERN_LEN} bytes")));
    }
    let flags = match options {
        None => "",
        Some(Value::String(it)) if it.chars().all(|c| matches!(c, 'i' | 'm' | 's' | 'x')) => it,
        Some(_) => return Err(QueryError::new("$options may only contain the flags i, m, s and x")),
    };
    // Inline flags make the pattern self-contained, so a SQL REGEXP function sees the same options.
    let source = if flags.is_empty() { regex.clone() } else { format!("(?{flags}){regex}") };
    Pattern::new(source).map_err(|e| QueryError::new(format!("invalid $regex: {e}")))
}

fn check_depth(depth: usize) -> Result<(), QueryError> {
    if depth > MAX_DEPTH {
        return Err(QueryError::new(format!("query is nested more than {MAX_DEPTH} levels deep")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(q: Value) -> Filter {
        Filter::parse(&q).unwrap_or_else(|e| panic!("{q} should parse: {e}"))
    }

    fn parse_err(q: Value) -> QueryError {
        match Filter::parse(&q) {
            Ok(it) => panic!("{q} should not parse, got {it:?}"),
            Err(e) => e,
        }
    }

    fn field(q: Value) -> (String, Vec<Op>) {
        let filter = parse(q);
        match filter.clauses.as_slice() {
            [Clause::Field { path, ops }] => (path.to_string(), ops.clone()),
            _ => panic!("expected one field clause, got {filter:?}"),
        }
    }

    fn num(n: i64) -> Literal {
        Literal::Number(n.into())
    }

    #[test]
    fn empty_filter_has_no_clauses() {
        assert_eq!(parse(json!({})), Filter { clauses: vec![] });
    }

    #[test]
    fn implicit_equality() {
        assert_eq!(field(json!({"completed": true})), ("completed".into(), vec![Op::Eq(Literal::Bool(true))]));
        assert_eq!(field(json!({"file": null})), ("file".into(), vec![Op::Eq(Literal::Null)]));
    }

    #[test]
    fn dotted_path() {
        let (path, _) = field(json!({"track.id": {"$in": ["a"]}}));
        assert_eq!(path, "track.id");
    }

    #[test]
    fn object_value_is_equality() {
        let (_, ops) = field(json!({"todoList": {"id": "X", "objectType": "objects.todoLists"}}));
        let expected = Literal::Object(vec![
            (Key::new("id".into()), Literal::String("X".into())),
            (Key::new("objectType".into()), Literal::String("objects.todoLists".into())),
        ]);
        assert_eq!(ops, vec![Op::Eq(expected)]);
    }

    #[test]
    fn comparison_operators() {
        let (_, ops) = field(json!({"n": {"$gt": 1, "$gte": 2, "$lt": "a", "$lte": 4.5}}));
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[0], Op::Cmp(CmpOp::Gt, Scalar::Number(1.into())));
        assert_eq!(ops[2], Op::Cmp(CmpOp::Lt, Scalar::String("a".into())));
        assert_eq!(parse_err(json!({"n": {"$gt": true}})).message, "$gt needs a number or a string");
        assert_eq!(parse_err(json!({"n": {"$lte": null}})).message, "$lte needs a number or a string");
    }

    #[test]
    fn eq_and_ne() {
        assert_eq!(field(json!({"a": {"$eq": 1}})).1, vec![Op::Eq(num(1))]);
        assert_eq!(field(json!({"file": {"$ne": null}})).1, vec![Op::Not(vec![Op::Eq(Literal::Null)])]);
    }

    #[test]
    fn in_and_nin() {
        assert_eq!(field(json!({"count": {"$in": [0, 5]}})).1, vec![Op::In(vec![num(0), num(5)])]);
        assert_eq!(field(json!({"count": {"$nin": []}})).1, vec![Op::Not(vec![Op::In(vec![])])]);
        let e = parse_err(json!({"count": {"$in": 5}}));
        assert_eq!(e.message, "$in needs an array");
        assert_eq!(e.property.as_deref(), Some("count"));
        assert_eq!(parse_err(json!({"count": {"$nin": "x"}})).message, "$nin needs an array");
    }

    #[test]
    fn all_and_size() {
        assert_eq!(field(json!({"tags": {"$all": ["a"]}})).1, vec![Op::All(vec![Literal::String("a".into())])]);
        assert_eq!(field(json!({"tags": {"$size": 2}})).1, vec![Op::Size(2)]);
        for bad in [json!(-1), json!(1.5), json!("2")] {
            assert_eq!(parse_err(json!({"tags": {"$size": bad}})).message, "$size needs a non-negative integer");
        }
        assert_eq!(parse_err(json!({"tags": {"$all": {}}})).message, "$all needs an array");
    }

    #[test]
    fn exists() {
        assert_eq!(field(json!({"a": {"$exists": false}})).1, vec![Op::Exists(false)]);
        assert_eq!(parse_err(json!({"a": {"$exists": 1}})).message, "$exists needs true or false");
    }

    #[test]
    fn regex_and_options() {
        let (_, ops) = field(json!({"title": {"$regex": "^to", "$options": "i"}}));
        let [Op::Regex(pattern)] = ops.as_slice() else { panic!("{ops:?}") };
        assert_eq!(pattern.source(), "(?i)^to");
        assert!(pattern.is_match("TODO"));
        assert!(parse_err(json!({"t": {"$regex": "("}})).message.starts_with("invalid $regex"));
        assert_eq!(parse_err(json!({"t": {"$regex": 1}})).message, "$regex needs a string");
        assert_eq!(
            parse_err(json!({"t": {"$regex": "a", "$options": "g"}})).message,
            "$options may only contain the flags i, m, s and x"
        );
        assert_eq!(parse_err(json!({"t": {"$options": "i"}})).message, "$options needs a sibling $regex");
    }

    #[test]
    fn elem_match_forms() {
        let (_, ops) = field(json!({"a": {"$elemMatch": {"$gt": 1}}}));
        assert_eq!(ops, vec![Op::ElemMatch(ElemMatch::Ops(vec![Op::Cmp(CmpOp::Gt, Scalar::Number(1.into()))]))]);
        let (_, ops) = field(json!({"a": {"$elemMatch": {"id": "X", "$or": [{"n": 1}]}}}));
        let [Op::ElemMatch(ElemMatch::Filter(filter))] = ops.as_slice() else { panic!("{ops:?}") };
        assert_eq!(filter.clauses.len(), 2);
        assert_eq!(
            parse_err(json!({"a": {"$elemMatch": {"id": "X", "$gt": 1}}})).message,
            "$elemMatch cannot mix $gt with field conditions"
        );
        assert_eq!(parse_err(json!({"a": {"$elemMatch": {}}})).message, "$elemMatch needs a non-empty object");
    }

    #[test]
    fn not() {
        assert_eq!(field(json!({"a": {"$not": {"$exists": true}}})).1, vec![Op::Not(vec![Op::Exists(true)])]);
        assert_eq!(parse_err(json!({"a": {"$not": 5}})).message, "$not needs an object of operators");
    }

    #[test]
    fn logical_operators() {
        let filter = parse(json!({"$or": [{"a": 1}, {"b": 2}], "$and": [{"a": 1}], "$nor": [{"c": 3}]}));
        assert_eq!(filter.clauses.len(), 3);
        assert_eq!(parse_err(json!({"$or": []})).message, "$or needs a non-empty array of filters");
        assert_eq!(parse_err(json!({"$and": [1]})).message, "$and needs a non-empty array of filters");
    }

    #[test]
    fn unknown_operators() {
        assert_eq!(parse_err(json!({"$where": "1"})).message, "unknown operator $where");
        let e = parse_err(json!({"a": {"$foo": 1}}));
        assert_eq!(e.message, "unknown operator $foo");
        assert_eq!(e.property.as_deref(), Some("a"));
        assert_eq!(parse_err(json!({"a": {"$elemMatch": {"$near": 1}}})).message, "unknown operator $near");
    }

    #[test]
    fn mixed_operator_object() {
        assert_eq!(
            parse_err(json!({"a": {"$gt": 1, "b": 2}})).message,
            "cannot mix operators and fields in one object"
        );
    }

    #[test]
    fn unsafe_paths_and_keys() {
        for path in ["a'b", "", "a..b", "a.", "a.$b", "a b", "a\"--"] {
            let e = parse_err(json!({ path: 1 }));
            assert!(e.message.starts_with("invalid field path"), "{path}: {e}");
        }
        let e = parse_err(json!({"ref": {"id'": 1}}));
        assert!(e.message.starts_with("invalid key \"id'\""), "{e}");
    }

    #[test]
    fn q_must_be_an_object() {
        assert_eq!(parse_err(json!([])).message, "q must be a JSON object");
    }

    #[test]
    fn depth_is_capped() {
        let mut q = json!({"a": 1});
        for _ in 0..MAX_DEPTH {
            q = json!({ "$and": [q] });
        }
        assert!(parse_err(q).message.contains("nested more than 32"));
        let mut q = json!({"a": 1});
        for _ in 0..10 {
            q = json!({ "$and": [q] });
        }
        parse(q);
    }

    #[test]
    fn terms_are_capped() {
        let many: Vec<Value> = (0..MAX_TERMS).map(|it| json!(it)).collect();
        assert_eq!(parse_err(json!({"a": {"$in": many}})).message, "query has more than 1024 conditions");
        parse(json!({"a": {"$in": [1, 2, 3]}}));
    }

    #[test]
    fn sort() {
        let sort = Sort::parse(&json!([
            {"sortBy": "title", "direction": "asc"},
            {"sortBy": "meta.createdAt", "direction": "desc"},
            {"sortBy": "n"}
        ]))
        .unwrap();
        let keys: Vec<(String, Direction)> = sort.keys.iter().map(|it| (it.path.to_string(), it.direction)).collect();
        assert_eq!(
            keys,
            [
                ("title".to_owned(), Direction::Asc),
                ("meta.createdAt".to_owned(), Direction::Desc),
                ("n".to_owned(), Direction::Asc)
            ]
        );
        assert_eq!(Sort::parse(&json!({})).unwrap_err().message, "sort must be a JSON array");
        assert_eq!(Sort::parse(&json!([{"sortBy": 1}])).unwrap_err().message, "sortBy must be a string");
        assert_eq!(
            Sort::parse(&json!([{"sortBy": "a", "direction": "up"}])).unwrap_err().message,
            "direction must be \"asc\" or \"desc\""
        );
        assert_eq!(
            Sort::parse(&json!([{"sortBy": "a", "order": "asc"}])).unwrap_err().message,
            "unknown sort property order"
        );
        assert!(Sort::parse(&json!([{"sortBy": "a'"}])).unwrap_err().message.starts_with("invalid field path"));
    }
}
