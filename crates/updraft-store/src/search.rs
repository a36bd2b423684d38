//! Full-text search over the `indexed` string properties of collections (`GET /v1/search`, docs/search.md).
//! The store keeps the search index in the transaction of every write, so that it cannot drift from the objects.

use serde_json::Value;
use updraft_query::Sort;
use updraft_query::search::Expr;

use crate::{Access, BoxFuture, Page, StoreError};

/// The most properties of one object type that are searched: one column of the search index each.
pub const MAX_SEARCHED_PER_TYPE: usize = 16;

/// The properties of a schema (as `/v1/object_types` keeps it) that full-text search reads: those of type string
/// declared `indexed`, in the schema's order, at most [`MAX_SEARCHED_PER_TYPE`].
pub fn searched_properties(schema: &Value) -> Vec<String> {
    let properties = schema.get("properties").and_then(Value::as_array).into_iter().flatten();
    properties
        .filter(|p| p["type"] == "string" && p["indexed"] == true)
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .take(MAX_SEARCHED_PER_TYPE)
        .collect()
}

/// A search, as the API parsed it.
#[derive(Debug, Clone, Copy)]
pub struct SearchQuery<'a> {
    /// Object types as the API names them (`objects.<name>`, `users`, `usergroups`).
    pub object_types: &'a [String],
    pub phrase: &'a Expr,
    /// The properties to search; `None`: every searched property of each type.
    pub properties: Option<&'a [String]>,
    /// Empty: by relevance.
    pub sort: &'a Sort,
}

pub trait Search: Send + Sync {
    /// The page of objects of `query`'s types that its phrase matches and the caller may read.
    fn search<'a>(
        &'a self,
        backend: &'a str,
        query: SearchQuery<'a>,
        page: Page,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Vec<Value>, StoreError>>;

    /// How many objects [`Search::search`] would find with no page.
    fn search_count<'a>(
        &'a self,
        backend: &'a str,
        query: SearchQuery<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
}
