//! Usergroups' members, and who may manage those (`/members/access`: `create`, `read`, `delete`). The groups
//! themselves (objects of type `usergroups` with a required `name`) are served with every collection
//! (`objects.rs`, `collection.rs`).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use updraft_core::ids::ObjectId;
use updraft_store::{Access, AccessDefaults, Acl, AclChange, Collection, Permission, Subject, USERGROUPS, USERS};

use super::DataRequest;
use super::access::{acl_from, acl_json};
use super::list::Params;
use super::objects::object_id;
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code, EdsError};
use crate::openapi::{ApiRouter, tag};

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(utoipa_axum::routes!(members, add_member, remove_member))
        .routes(utoipa_axum::routes!(member_access))
}

/// Who may manage a group's members: `create` adds, `read` lists, `delete` removes; subjects as in an ACL.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "written and read by hand (`acl_json`, `acl_from`); this is its schema")]
struct MemberAcl {
    create: Option<Vec<super::objects_doc::Ref>>,
    read: Option<Vec<super::objects_doc::Ref>>,
    delete: Option<Vec<super::objects_doc::Ref>>,
}

/// A page of members, each the user as the caller may see it (a ref where it may not read the user).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "the schema of `members`' answer")]
struct Members {
    results: Vec<super::objects_doc::EdsObject>,
    query: MembersWindow,
}

/// A page of members, or with `count` their number.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "the schema of `members`' answer")]
enum MembersAnswer {
    Page(Members),
    Count(super::objects_doc::Count),
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "the schema of `members`' answer")]
struct MembersWindow {
    limit: u32,
    offset: u32,
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "read by hand through `Params`")]
struct MembersParams {
    /// At most this many, 100 if not given.
    limit: Option<u32>,
    offset: Option<u32>,
    /// Present (any value): answer `{"count"}` instead of a page.
    count: Option<String>,
}

/// The member-management permissions on the wire, and the slots of `Acl` that hold them.
const MEMBER_PERMISSIONS: [(&str, Permission); 3] =
    [("create", Permission::Update), ("read", Permission::Read), ("delete", Permission::Delete)];

/// Who manages the members of a group without member rules of its own. In an `open` backend everyone, as the
/// hosted service's fresh backend did (QtEnginio's test helpers add members anonymously; Social Todos users join
/// `allUsers` themselves); in a `locked` one nobody but the group's administrators. Admins change it through
/// `/members/access`.
fn default_member_acl(defaults: AccessDefaults) -> Acl {
    match defaults {
        AccessDefaults::Open => {
            let everyone = || vec![Subject::Everyone];
            Acl { read: everyone(), update: everyone(), delete: everyone(), admin: Vec::new() }
        }
        AccessDefaults::Locked => Acl::default(),
    }
}

/// The group's ACL, for a group the caller can see.
async fn group_acl(state: &ApiState, request: &DataRequest, group: ObjectId) -> Result<Acl, EdsError> {
    let at = Collection { backend: &request.backend.id, object_type: USERGROUPS };
    state
        .store
        .acl(at, group, request.access())
        .await?
        .ok_or_else(|| ApiError::with_message(Code::NotFound, "Usergroup not found").into())
}

/// The group, if the caller may manage its members in this way: as the secret, as an admin of the group, or
/// as a subject its member ACL lists under `permission`.
async fn group(
    state: &ApiState,
    request: &DataRequest,
    id: &str,
    permission: Permission,
) -> Result<ObjectId, EdsError> {
    let group = object_id(id)?;
    let acl = group_acl(state, request, group).await?;
    let access = request.access();
    if access.permits(&acl, Permission::Admin) {
        return Ok(group);
    }
    let members = state.groups.member_acl(&request.backend.id, group).await?;
    if access.permits(&members.unwrap_or_else(|| default_member_acl(request.backend.access)), permission) {
        return Ok(group);
    }
    Err(request.denied(EdsError(ApiError::new(Code::AccessDenied))))
}

/// Who may manage a group's members.
///
/// GET shows it; PUT adds, POST replaces, DELETE removes the subjects sent, for admins of the group. Without a
/// rule of its own a group's members are managed by everyone in an `open` backend and by its admins in a `locked`
/// one.
#[utoipa::path(method(get, put, post, delete), path = "/v1/usergroups/{id}/members/access", tag = tag::USERGROUPS,
    security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])), request_body(content = MemberAcl, description = "With PUT, POST and DELETE."),
    responses((status = 200, body = MemberAcl)))]
async fn member_access(
    State(state): State<ApiState>,
    request: DataRequest,
    method: Method,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, EdsError> {
    let group = object_id(&id)?;
    let acl = group_acl(&state, &request, group).await?;
    let backend = &request.backend.id;
    let members = if method == Method::GET {
        state.groups.member_acl(backend, group).await?.unwrap_or_else(|| default_member_acl(request.backend.access))
    } else {
        if !request.access().permits(&acl, Permission::Admin) {
            return Err(request.denied(EdsError(ApiError::new(Code::AccessDenied))));
        }
        let given = acl_from(read_json(body, state.limits.max_body_bytes).await?, &MEMBER_PERMISSIONS, true)?;
        let change = match method {
            Method::PUT => AclChange::Add(given),
            Method::POST => AclChange::Replace(given),
            _ => AclChange::Remove(given),
        };
        state.groups.change_member_acl(backend, group, change, default_member_acl(request.backend.access)).await?
    };
    Ok(Json(acl_json(&members, &MEMBER_PERMISSIONS)).into_response())
}

/// The user a members body names: `{"id": "<userId>", "objectType": "users"}`.
async fn member(state: &ApiState, request: &DataRequest, body: Body) -> Result<(ObjectId, Value), EdsError> {
    let body = read_json(body, state.limits.max_body_bytes).await?;
    // A body-less DELETE (QtEnginio's client cannot send one) must not mean "everyone".
    let Some(id) = body.as_ref().and_then(|b| b.get("id")).and_then(Value::as_str) else {
        return Err(ApiError::field("id", "A member must be given as {\"id\", \"objectType\": \"users\"}").into());
    };
    let kind = body.as_ref().and_then(|b| b.get("objectType")).and_then(Value::as_str).unwrap_or(USERS);
    if kind != USERS {
        return Err(ApiError::field("objectType", "Members are users").into());
    }
    let user_not_found = || EdsError(ApiError::with_message(Code::NotFound, "User not found"));
    let user = ObjectId::parse(id).ok_or_else(user_not_found)?;
    let at = Collection { backend: &request.backend.id, object_type: USERS };
    if let Some(doc) = state.store.get(at, user, request.access()).await? {
        return Ok((user, doc));
    }
    // A group admin in a locked backend adds users it may not read: the member is the user, the answer only its
    // ref, never the document.
    state.store.get(at, user, Access::Everything).await?.ok_or_else(user_not_found)?;
    Ok((user, json!({"id": user.to_string(), "objectType": USERS})))
}

/// Adds a user to a group.
///
/// Answers the user object, as QtEnginio expects (`data.id == userId`): 201 when added, 200 when it was a member
/// already.
#[utoipa::path(post, path = "/v1/usergroups/{id}/members", tag = tag::USERGROUPS, security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    request_body = super::objects_doc::Ref,
    responses((status = 201, body = super::objects_doc::EdsObject), (status = 200, body = super::objects_doc::EdsObject)))]
async fn add_member(
    State(state): State<ApiState>,
    request: DataRequest,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, EdsError> {
    let group = group(&state, &request, &id, Permission::Update).await?;
    let (user, doc) = member(&state, &request, body).await?;
    let added = state.groups.add_member(&request.backend.id, group, user).await?;
    state.sessions.user_changed(&state, &request.backend.id, &user.to_string()).await;
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(doc)).into_response())
}

/// Removes a user from a group (the user as a body on DELETE).
#[utoipa::path(delete, path = "/v1/usergroups/{id}/members", tag = tag::USERGROUPS, security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    request_body = super::objects_doc::Ref, responses((status = 200, body = super::objects_doc::Empty)))]
async fn remove_member(
    State(state): State<ApiState>,
    request: DataRequest,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, EdsError> {
    let group = group(&state, &request, &id, Permission::Delete).await?;
    let (user, _) = member(&state, &request, body).await?;
    if !state.groups.remove_member(&request.backend.id, group, user).await? {
        return Err(ApiError::with_message(Code::NotFound, "Not a member").into());
    }
    state.sessions.user_changed(&state, &request.backend.id, &user.to_string()).await;
    Ok(Json(json!({})).into_response())
}

/// A group's members, each as the caller may see that user.
#[utoipa::path(get, path = "/v1/usergroups/{id}/members", tag = tag::USERGROUPS, security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])), params(MembersParams),
    responses((status = 200, description = "A page, or `{\"count\"}` with `count`.", body = MembersAnswer)))]
async fn members(
    State(state): State<ApiState>,
    request: DataRequest,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, EdsError> {
    let group = group(&state, &request, &id, Permission::Read).await?;
    let params = Params::of(&uri);
    // Qt sends `count=`, other clients `count=1`: presence is what counts.
    if params.get("count").is_some() {
        let count = state.groups.count_members(&request.backend.id, group, request.access()).await?;
        return Ok(Json(json!({ "count": count })).into_response());
    }
    let page = params.page()?;
    let results = state.groups.members(&request.backend.id, group, page, request.access()).await?;
    Ok(Json(json!({ "results": results, "query": { "limit": page.limit, "offset": page.offset } })).into_response())
}
