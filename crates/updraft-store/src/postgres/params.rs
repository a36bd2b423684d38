//! Bound parameters of statements built at run time: each condition pushes its values and gets its `$n`.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::QueryAs;
use sqlx::{FromRow, Postgres};

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(String),
    /// A `text[]`.
    Texts(Vec<String>),
    Int(i64),
    Real(f64),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Params {
    values: Vec<Param>,
}

impl Params {
    /// Parameters `$1…$n` already in place.
    pub(crate) fn new(values: Vec<Param>) -> Params {
        Params { values }
    }

    /// Adds a value; answers its placeholder.
    pub(crate) fn push(&mut self, value: Param) -> String {
        self.values.push(value);
        format!("${}", self.values.len())
    }

    /// The placeholder the next pushed value gets.
    pub(crate) fn next(&self) -> usize {
        self.values.len() + 1
    }

    pub(crate) fn extend(&mut self, values: impl IntoIterator<Item = Param>) {
        self.values.extend(values);
    }

    /// `sql` (built from trusted fragments, every value bound) with these values.
    pub(crate) fn query_as<'q, O>(&'q self, sql: &'q str) -> QueryAs<'q, Postgres, O, PgArguments>
    where
        O: for<'r> FromRow<'r, PgRow>,
    {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for value in &self.values {
            query = match value {
                Param::Text(it) => query.bind(it),
                Param::Texts(it) => query.bind(it),
                Param::Int(it) => query.bind(it),
                Param::Real(it) => query.bind(it),
            };
        }
        query
    }
}
