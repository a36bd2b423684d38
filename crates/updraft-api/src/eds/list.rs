//! Listing a collection: `q`, `sort`, `limit`, `offset`, `count` (`docs/queries.md`).
//! Every list answer echoes the query, which QtEnginio's test helpers read back.

use axum::Json;
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use updraft_query::{Filter, QueryError, Sort};
use updraft_store::{Collection, ListQuery, Page};

use super::DataRequest;
use crate::ApiState;
use crate::error::{ApiError, Code, EdsError};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// Answers `GET` on a collection.
pub(super) async fn list(
    state: &ApiState,
    request: &DataRequest,
    object_type: &str,
    uri: &Uri,
) -> Result<Response, EdsError> {
    super::schemas::may_list(state, request, object_type).await?;
    let params = Params::of(uri);
    let param = |name: &str| params.get(name);

    let q = json_param(param("q"), "q", json!({}))?;
    // The npm SDK sends `q=null` for `find(null)`, and its typed values (`Eds.Ref`, `Eds.Time`) inside queries:
    // they mean what their plain forms mean. The echo keeps what the client sent.
    let mut plain = if q.is_null() { json!({}) } else { q.clone() };
    updraft_core::typed::to_plain(&mut plain);
    let filter = Filter::parse(&plain).map_err(bad_query)?;
    let sort_value = json_param(param("sort"), "sort", json!([]))?;
    let sort = Sort::parse(&sort_value).map_err(bad_query)?;
    let at = Collection { backend: &request.backend.id, object_type };

    if param("explain").is_some() {
        return explain(state, request, at, &filter, &sort, &params, param("count").is_some()).await;
    }
    // Qt sends `count=`, other clients `count=1`: presence is what counts.
    if param("count").is_some() {
        let count = state.store.count(at, &filter, request.access()).await?;
        return Ok(Json(json!({ "count": count })).into_response());
    }
    let page = params.page()?;
    let (limit, offset) = (page.limit, page.offset);
    let query = ListQuery { filter: &filter, sort: &sort, page };
    let echo = json!({ "query": q, "limit": limit, "offset": offset, "sort": sort_value });
    let include = super::include::requested(uri)?;
    if include.is_empty() {
        // The page's JSON as the store wrote it, not parsed and serialized again.
        let results = state.store.list_json(at, query, request.access()).await?;
        let body = format!(r#"{{"results":{results},"query":{echo}}}"#);
        return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
    }
    let mut results = state.store.list(at, query, request.access()).await?;
    super::include::expand_all(state, request, &mut results, &include).await?;
    Ok(Json(json!({ "results": results, "query": echo })).into_response())
}

/// `explain`: how the store would run the list (or the count), for the instance secret to check that a query
/// uses an index. Others are refused: the plan names the backend's indexes.
async fn explain(
    state: &ApiState,
    request: &DataRequest,
    at: Collection<'_>,
    filter: &Filter,
    sort: &Sort,
    params: &Params,
    count: bool,
) -> Result<Response, EdsError> {
    if !matches!(request.caller, super::Caller::Secret) {
        let message = "explain is for the instance secret (Enginio-Backend-Secret)";
        return Err(request.denied(EdsError(ApiError::with_message(Code::AccessDenied, message))));
    }
    let query = ListQuery { filter, sort, page: params.page()? };
    let plan = state.store.explain(at, query, count, request.access()).await?;
    let indexed: Vec<Value> =
        plan.indexed.iter().map(|(property, arrays)| json!({"property": property, "holdsArrays": arrays})).collect();
    Ok(Json(json!({ "plan": plan.steps, "indexed": indexed })).into_response())
}

/// The query parameters of a request, read without a typed extractor so that bad values get the
/// EDS error form.
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    pub(super) fn of(uri: &Uri) -> Params {
        Params(serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default())
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter.
    pub(super) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `limit` (default 100, at most 1000) and `offset`.
    pub(super) fn page(&self) -> Result<Page, EdsError> {
        let limit = number_param(self.get("limit"), "limit", DEFAULT_LIMIT)?.min(MAX_LIMIT);
        Ok(Page { limit, offset: number_param(self.get("offset"), "offset", 0)? })
    }
}

/// A JSON-encoded parameter; absent or empty is `default`.
pub(super) fn json_param(raw: Option<&str>, name: &'static str, default: Value) -> Result<Value, EdsError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => serde_json::from_str(text)
            .map_err(|_| ApiError::with_message(Code::BadRequest, format!("{name} is not valid JSON")).into()),
    }
}

fn number_param(raw: Option<&str>, name: &'static str, default: u32) -> Result<u32, EdsError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            ApiError::with_message(Code::BadRequest, format!("{name} must be a non-negative integer")).into()
        }),
    }
}

/// An invalid query is a 400 naming the property when there is one.
pub(super) fn bad_query(err: QueryError) -> EdsError {
    EdsError(ApiError::with_message(Code::BadRequest, err.to_string()))
}
