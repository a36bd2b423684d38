//! `GET /v1/search`: full-text search over the `indexed` string properties of one or more object types
//! (docs/search.md), in both forms clients send:
//! - QtEnginio: `objectTypes[]=objects.a&objectTypes[]=objects.b&search={"phrase","properties":["p"]}`;
//! - the npm SDK: `objectTypes=objects.a,objects.b&search={"phrase","properties":"p1,p2","defaultOperator"}`.
//!
//! `limit`, `offset`, `sort`, `count` and `include` work as on lists; results are ACL-filtered by the store, in
//! the query. A caller needs the collection's read permission on each type, as for listing it.

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use updraft_query::Sort;
use updraft_query::search::{Expr, Operator};
use updraft_store::{SearchQuery, USERGROUPS, USERS};
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::DataRequest;
use super::list::{Params, bad_query, json_param};
use super::objects_doc::EdsObject;
use crate::ApiState;
use crate::error::{ApiError, Code, EdsError};
use crate::openapi::{ApiRouter, tag};

/// The most object types one search names.
const MAX_TYPES: usize = 16;

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new().routes(routes!(search))
}

/// The objects found, or with `count` their number.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum SearchAnswer {
    /// With `count`: how many objects the search finds that the caller may read.
    Count { count: u64 },
    /// A page of the objects found that the caller may read, by relevance unless `sort` says otherwise.
    Results {
        #[schema(value_type = Vec<EdsObject>)]
        results: Vec<Value>,
    },
}

/// Full-text search over the `indexed` string properties of one or more object types.
///
/// Both forms the original clients send are taken: QtEnginio's
/// `objectTypes[]=objects.a&objectTypes[]=objects.b&search={"phrase":"cat OR dog","properties":["title"]}`, and
/// the npm SDK's `objectTypes=objects.a,objects.b&search={"phrase":"cat","properties":"title,body",
/// "defaultOperator":"AND"}`. The phrase syntax (`AND`, `OR`, `NOT`/`-`, parentheses, `"…"`, `cat*`, `*cat*`)
/// is in `docs/search.md`.
///
/// The caller needs the collection's `read` permission on each type, as for listing it; each object is found
/// only if the caller may read it.
#[utoipa::path(get, path = "/v1/search", tag = tag::SEARCH,
    security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    params(
        ("objectTypes[]" = Option<Vec<String>>, Query, description = "A type to search, repeated (QtEnginio): \
            `objects.<name>`, `users` or `usergroups`. At most 16 in all."),
        ("objectTypes" = Option<String>, Query, description = "The types to search as a comma list (npm SDK). \
            One of the two forms is required."),
        ("search" = String, Query, description = "JSON: `{\"phrase\", \"properties\", \"defaultOperator\"}`. \
            `phrase` is required (at most 1,000 bytes and 64 terms); `properties` (a list or a comma string) \
            narrows the searched properties; `defaultOperator` (`OR` by default, or `AND`) joins adjacent terms."),
        ("limit" = Option<u32>, Query, description = "At most this many: 100 if not given, at most 1,000."),
        ("offset" = Option<u32>, Query, description = "Skips this many."),
        ("sort" = Option<String>, Query, description = "JSON, as on lists: `[{\"sortBy\": \"title\", \
            \"direction\": \"asc\"}]`; without it, by relevance."),
        ("count" = Option<String>, Query, description = "Present (any value): answers `{\"count\"}` instead."),
        ("include" = Option<String>, Query, description = "JSON, as on lists: the ref properties to expand \
            (`{\"creator\": {}}`)."),
    ),
    responses((status = 200, body = SearchAnswer)))]
async fn search(State(state): State<ApiState>, request: DataRequest, uri: Uri) -> Result<Response, EdsError> {
    let params = Params::of(&uri);
    let object_types = object_types(&params)?;
    let asked = Asked::parse(params.get("search"))?;
    for object_type in &object_types {
        super::schemas::may_list(&state, &request, object_type).await?;
    }
    let sort = Sort::parse(&json_param(params.get("sort"), "sort", json!([]))?).map_err(bad_query)?;
    let query = SearchQuery {
        object_types: &object_types,
        phrase: &asked.phrase,
        properties: asked.properties.as_deref(),
        sort: &sort,
    };
    let backend = &request.backend.id;
    if params.get("count").is_some() {
        let count = state.search.search_count(backend, query, request.access()).await?;
        return Ok(Json(SearchAnswer::Count { count }).into_response());
    }
    let include = super::include::requested(&uri)?;
    let mut results = state.search.search(backend, query, params.page()?, request.access()).await?;
    super::include::expand_all(&state, &request, &mut results, &include).await?;
    Ok(Json(SearchAnswer::Results { results }).into_response())
}

/// `objectTypes[]` repeated (Qt) or `objectTypes` as a comma list (Node), as the store names them.
fn object_types(params: &Params) -> Result<Vec<String>, EdsError> {
    let mut names: Vec<&str> = params
        .all("objectTypes[]")
        .chain(params.all("objectTypes"))
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    let mut seen = std::collections::HashSet::new();
    names.retain(|name| seen.insert(*name));
    if names.is_empty() {
        return Err(bad("objectTypes names the object types to search (objectTypes[]=objects.todos)"));
    }
    if names.len() > MAX_TYPES {
        return Err(bad(format!("a search names at most {MAX_TYPES} object types")));
    }
    names
        .into_iter()
        .map(|name| match name {
            "users" => Ok(USERS.to_owned()),
            "usergroups" => Ok(USERGROUPS.to_owned()),
            _ => match name.strip_prefix("objects.") {
                Some(bare) => super::objects::object_type(bare),
                None => Err(bad(format!("unknown object type {name:?}: objects.<name>, users or usergroups"))),
            },
        })
        .collect()
}

/// The `search` parameter, parsed.
struct Asked {
    phrase: Expr,
    properties: Option<Vec<String>>,
}

impl Asked {
    fn parse(raw: Option<&str>) -> Result<Asked, EdsError> {
        let Some(raw) = raw.filter(|raw| !raw.trim().is_empty()) else {
            return Err(bad("search is a JSON object: {\"phrase\": \"...\", \"properties\": [...]}"));
        };
        let Ok(Value::Object(search)) = serde_json::from_str::<Value>(raw) else {
            return Err(bad("search is a JSON object: {\"phrase\": \"...\", \"properties\": [...]}"));
        };
        if let Some(unknown) =
            search.keys().find(|k| !["phrase", "properties", "defaultOperator", "near"].contains(&k.as_str()))
        {
            return Err(bad(format!("search has no member {unknown:?} (phrase, properties, defaultOperator)")));
        }
        if search.get("near").is_some_and(|near| !near.is_null()) {
            return Err(bad("search near (a geographic filter) is not supported"));
        }
        let default = match search.get("defaultOperator") {
            None | Some(Value::Null) => Operator::default(),
            Some(Value::String(text)) => Operator::parse(text).map_err(|e| bad(e.message))?,
            Some(_) => return Err(bad("defaultOperator is AND or OR")),
        };
        let Some(Value::String(phrase)) = search.get("phrase") else {
            return Err(bad("search.phrase is the text to look for"));
        };
        let phrase = Expr::parse(phrase, default).map_err(|e| bad(e.message))?;
        let properties = match search.get("properties") {
            None | Some(Value::Null) => None,
            Some(Value::String(list)) => Some(list.split(',').map(str::trim).map(str::to_owned).collect()),
            Some(Value::Array(list)) => Some(
                list.iter()
                    .map(|p| p.as_str().map(str::to_owned).ok_or_else(|| bad("search.properties names properties")))
                    .collect::<Result<Vec<String>, EdsError>>()?,
            ),
            Some(_) => return Err(bad("search.properties is a list of property names")),
        };
        let properties: Option<Vec<String>> = properties.map(|p| p.into_iter().filter(|p| !p.is_empty()).collect());
        if let Some(properties) = &properties {
            if properties.is_empty() {
                return Err(bad("search.properties names at least one property"));
            }
            if let Some(bad_name) = properties.iter().find(|p| !super::schemas::valid_property(p)) {
                return Err(bad(format!("search.properties: {bad_name:?} is not a property name")));
            }
        }
        Ok(Asked { phrase, properties })
    }
}

fn bad(message: impl Into<std::borrow::Cow<'static, str>>) -> EdsError {
    EdsError(ApiError::with_message(Code::BadRequest, message))
}
