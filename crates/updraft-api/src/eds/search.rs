//! `GET /v1/search`: full-text search over the `indexed` string properties of one or more object types
//! (docs/search.md), in both forms clients send:
//! - QtEnginio: `objectTypes[]=objects.a&objectTypes[]=objects.b&search={"phrase","properties":["p"]}`;
//! - the npm SDK: `objectTypes=objects.a,objects.b&search={"phrase","properties":"p1,p2","defaultOperator"}`.
//!
//! `limit`, `offset`, `sort`, `count` and `include` work as on lists; results are ACL-filtered by the store, in
//! the query. A caller needs the collection's read permission on each type, as for listing it.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use updraft_query::Sort;
use updraft_query::search::{Expr, Operator};
use updraft_store::{SearchQuery, USERGROUPS, USERS};

use super::DataRequest;
use super::list::{Params, bad_query, json_param};
use crate::ApiState;
use crate::error::{ApiError, Code, EdsError};

/// The most object types one search names.
const MAX_TYPES: usize = 16;

pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/v1/search", get(search))
}

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
        return Ok(Json(json!({ "count": count })).into_response());
    }
    let include = super::include::requested(&uri)?;
    let mut results = state.search.search(backend, query, params.page()?, request.access()).await?;
    super::include::expand_all(&state, &request, &mut results, &include).await?;
    Ok(Json(json!({ "results": results })).into_response())
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
