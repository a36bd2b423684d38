//! Index unions: a filter whose rows no single index range holds, such as an `$or` of indexed conditions or a
//! condition on an indexed property that holds arrays, split into branches that each are an index range. The
//! store selects the union of the branches' ids and checks the whole filter on those rows, so the branches only
//! need to hold every matching row (a superset), never to be exact.
//!
//! SQLite itself would not do this here: its OR optimization does not use partial indexes, which key indexes are.

use super::keys::{self, literal_prefix};
use super::{Bind, Layout, Sql, join, literal_ref_id, number_bind, sql_op};
use crate::ast::{Clause, Filter, Literal, Op, Path, Scalar};

/// Where the ids of one branch come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Branch {
    /// The rows of the collection matching this condition (over the layout's columns).
    Rows(Sql),
    /// The objects with an array element, in the indexed `property`, matching this condition over the element
    /// table's `rank` and `value` columns (see `key_index_terms`).
    Elements { property: String, condition: Sql },
}

/// The branches covering `filter`, from its first top-level condition that needs a union and allows one; None
/// when one index range serves the filter, or when no union covers it.
pub fn branches(filter: &Filter, layout: &Layout<'_>) -> Option<Vec<Branch>> {
    filter.clauses.iter().find_map(|clause| match clause {
        Clause::Or(filters) => {
            filters.iter().map(|it| served(it, layout).then(|| Branch::Rows(super::compile_in(it, layout)))).collect()
        }
        Clause::Field { path, ops } => array_branches(path, ops, layout),
        Clause::And(_) | Clause::Nor(_) => None,
    })
}

/// Whether one of the filter's top-level conditions is an index range by itself.
fn served(filter: &Filter, layout: &Layout<'_>) -> bool {
    filter.clauses.iter().any(|clause| match clause {
        Clause::Field { path, ops } => ops.iter().any(|op| keys::index_serves(path, op, filter, layout)),
        Clause::Or(filters) => !filters.is_empty() && filters.iter().all(|it| served(it, layout)),
        Clause::And(filters) => filters.iter().any(|it| served(it, layout)),
        Clause::Nor(_) => false,
    })
}

/// For a condition on an indexed property that holds arrays: the values themselves (compiled as if no array
/// existed) and the matching elements, when an element condition can be read from the element table.
fn array_branches(path: &Path, ops: &[Op], layout: &Layout<'_>) -> Option<Vec<Branch>> {
    let [property] = path.segments() else { return None };
    let indexed = layout.indexed.iter().find(|it| it.property == *property && it.arrays)?;
    let op = ops.iter().find(|op| element_condition(op).is_some())?;
    let scalars: Vec<_> = layout
        .indexed
        .iter()
        .map(|it| super::Indexed {
            property: it.property.clone(),
            arrays: it.arrays && it.property != indexed.property,
        })
        .collect();
    let scalar_layout = Layout { indexed: &scalars, ..*layout };
    let itself = Filter { clauses: vec![Clause::Field { path: path.clone(), ops: vec![op.clone()] }] };
    Some(vec![
        Branch::Rows(super::compile_in(&itself, &scalar_layout)),
        Branch::Elements { property: property.clone(), condition: element_condition(op)? },
    ])
}

/// A condition on an element's `rank` and `value` that holds for every element matching `op` (the whole filter
/// is checked again on the rows): equalities, `$in`, ranges and anchored prefixes.
fn element_condition(op: &Op) -> Option<Sql> {
    let mut binds = Vec::new();
    let mut parts = Vec::new();
    let literals = match op {
        Op::Eq(literal) => std::slice::from_ref(literal),
        Op::In(literals) => literals.as_slice(),
        Op::Cmp(op, scalar) => {
            let n = match scalar {
                Scalar::Number(n) => {
                    binds.push(number_bind(n));
                    1
                }
                Scalar::String(s) => {
                    binds.push(Bind::Text(s.clone()));
                    2
                }
            };
            return Some(Sql { where_clause: format!("(rank = {n} AND value {} ?)", sql_op(*op)), binds });
        }
        Op::Regex(pattern) => {
            let (low, high) = literal_prefix(pattern.source())?;
            binds.push(Bind::Text(low));
            let mut sql = "(rank = 2 AND value >= ?".to_owned();
            if let Some(high) = high {
                binds.push(Bind::Text(high));
                sql.push_str(" AND value < ?");
            }
            sql.push(')');
            return Some(Sql { where_clause: sql, binds });
        }
        _ => return None,
    };
    if literals.is_empty() {
        return None;
    }
    for literal in literals {
        let (rank, value) = match literal {
            Literal::Null => (0, None),
            Literal::Number(n) => (1, Some(number_bind(n))),
            Literal::String(s) => (2, Some(Bind::Text(s.clone()))),
            Literal::Bool(b) => (5, Some(Bind::Int(i64::from(*b)))),
            Literal::Object(fields) => (3, Some(Bind::Text(literal_ref_id(fields)?.to_owned()))),
            // An array literal matches an element equal to it: nested arrays are not in the element table.
            Literal::Array(_) => return None,
        };
        match value {
            Some(value) => {
                binds.push(value);
                parts.push(format!("(rank = {rank} AND value = ?)"));
            }
            None => parts.push(format!("(rank = {rank})")),
        }
    }
    Some(Sql { where_clause: join(parts, "OR", "0"), binds })
}
