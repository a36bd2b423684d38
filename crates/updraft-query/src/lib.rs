//! The EDS query language: the MongoDB-like `q` filter and the `sort` keys (`docs/queries.md`).
//!
//! A query is parsed once into a typed AST ([`Filter`], [`Sort`]), which [`Filter::matches`] evaluates in memory
//! and [`sqlite::compile`] / [`postgres::compile_in`] turn into SQL. The evaluator is the reference: the compiled
//! SQL must select exactly the documents it matches, in the order [`Sort::compare`] gives (property tests check
//! both against SQLite and PostgreSQL).
//!
//! Invariants:
//! - No I/O, no HTTP, no async: inputs are `serde_json::Value`s, outputs are ASTs, booleans and SQL text.
//! - Every user-controlled string that reaches SQL is either a bind value or a path segment validated against
//!   `[A-Za-z0-9_]+` at parse time. Nothing else is spliced into SQL text.
//! - A filter that parses compiles to SQL that the database evaluates whole; nothing falls back to filtering in
//!   memory.
//! - Parsing is bounded: nesting depth, number of conditions and pattern length are capped (see [`parse`]).

pub mod ast;
mod eval;
pub mod parse;
pub mod postgres;
pub mod search;
pub mod sqlite;

pub use ast::{Direction, Filter, Sort};

/// Why a query was rejected: a message for the client and, when known, the property it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub message: String,
    pub property: Option<String>,
}

impl QueryError {
    pub(crate) fn new(message: impl Into<String>) -> QueryError {
        QueryError { message: message.into(), property: None }
    }

    pub(crate) fn with_property(mut self, property: impl Into<String>) -> QueryError {
        self.property = Some(property.into());
        self
    }

    /// Keeps the innermost property when errors bubble up through nested fields.
    pub(crate) fn or_property(self, property: &str) -> QueryError {
        match self.property {
            Some(_) => self,
            None => self.with_property(property),
        }
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.property {
            Some(property) => write!(f, "{} (property {property})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for QueryError {}
