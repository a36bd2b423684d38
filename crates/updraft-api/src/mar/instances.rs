//! The platform's instances, one kind per service: `mar` apps and `mdb` databases (whose records know their cloud
//! and tags), `eds` apps (the account API's, with their two backends) and `mws` gateways (whose cloud and tags the
//! runtime's placements keep). Every id is found in one place, so `/v1/instances/:id` needs no provider.

use serde::Serialize;
use serde_json::{Value, json};
use updraft_runtime::clouds::Placement;
use updraft_runtime::names::{self, DATACENTER};
use updraft_runtime::records::AppRecord;
use utoipa::ToSchema;

use super::databases::{database_error, databases, delete_service, forget_app};
use super::{runtime, runtime_error};
use crate::ApiState;
use crate::error::{ApiError, Code};
use crate::mws::gateways;

pub(super) enum Instance {
    App(AppRecord),
    Database(updraft_databases::ServiceRecord),
    Backend(updraft_store::App),
    Gateway(Value),
}

// Members sorted by name, as `json!` wrote them (see `mar/mod.rs`).

/// An instance of any service, as the platform API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct InstanceWire {
    /// The cloud it belongs to.
    account_id: String,
    /// By provider: `mar` `{"runtimeSize", "runtimeType": "app"}`; `mdb` `{"runtimeSize", "serviceImage"}`;
    /// `eds` `{"environments"}`, the EDS app's development and production backends with their keys (as
    /// `/v1/account/apps` shows them); `mws` the gateway's configuration with its `securityToken` (as
    /// `/v1/gateways/{id}` shows it).
    config: Value,
    /// This server: `local-1`.
    datacenter_id: &'static str,
    /// `mar-local-1-<name>` for apps, `mdb-local-1-<name>` for databases, `mws-local-1-<name>` for gateways, the
    /// EDS app's id for `eds`.
    id: String,
    name: String,
    /// `mar`, `mdb`, `eds` or `mws`.
    service_provider_id: &'static str,
    tags: Vec<String>,
}

fn shape(id: &str, name: &str, provider: &'static str, cloud: &str, tags: &[String], config: Value) -> InstanceWire {
    InstanceWire {
        account_id: cloud.to_owned(),
        config,
        datacenter_id: DATACENTER,
        id: id.to_owned(),
        name: name.to_owned(),
        service_provider_id: provider,
        tags: tags.to_vec(),
    }
}

impl Instance {
    pub(super) fn cloud(&self, state: &ApiState) -> String {
        match self {
            Instance::App(app) => app.cloud.clone(),
            Instance::Database(service) => service.cloud.clone(),
            Instance::Backend(_) | Instance::Gateway(_) => self.placement(state).cloud,
        }
    }

    fn placement(&self, state: &ApiState) -> Placement {
        let (provider, id) = match self {
            Instance::Backend(app) => ("eds", app.id.as_str()),
            Instance::Gateway(gateway) => ("mws", gateway["id"].as_str().unwrap_or_default()),
            Instance::App(app) => ("mar", app.id.as_str()),
            Instance::Database(service) => ("mdb", service.id.as_str()),
        };
        match &state.runtime {
            Some(runtime) => runtime.placements().of(provider, id),
            None => Placement { id: id.into(), provider: provider.into(), cloud: "default".into(), tags: Vec::new() },
        }
    }

    pub(super) fn json(&self, state: &ApiState) -> InstanceWire {
        match self {
            Instance::App(app) => {
                let config = json!({"runtimeSize": app.size, "runtimeType": "app"});
                shape(&app.id, &app.name, "mar", &app.cloud, &app.tags, config)
            }
            Instance::Database(s) => {
                let config = json!({"runtimeSize": s.size, "serviceImage": s.engine.image()});
                shape(&s.id, &s.name, "mdb", &s.cloud, &s.tags, config)
            }
            Instance::Backend(app) => {
                let place = self.placement(state);
                let environments = crate::eds::app_json(app)["environments"].clone();
                shape(&app.id, &app.name, "eds", &place.cloud, &place.tags, json!({"environments": environments}))
            }
            Instance::Gateway(gateway) => {
                let place = self.placement(state);
                let id = gateway["id"].as_str().unwrap_or_default();
                let name = id.strip_prefix(&format!("mws-{DATACENTER}-")).unwrap_or(id);
                shape(id, name, "mws", &place.cloud, &place.tags, gateway.clone())
            }
        }
    }

    /// Sets the tags: in the record of apps and databases, in the placement of the others.
    pub(super) async fn set_tags(self, state: &ApiState, tags: Vec<String>) -> Result<Instance, ApiError> {
        Ok(match self {
            Instance::App(app) => Instance::App(runtime(state)?.set_tags(&app.id, tags).await.map_err(runtime_error)?),
            Instance::Database(s) => {
                Instance::Database(databases(state)?.set_tags(&s.id, tags).await.map_err(database_error)?)
            }
            other => {
                let placement = Placement { tags, ..other.placement(state) };
                place(runtime(state)?, placement)?;
                other
            }
        })
    }

    pub(super) fn name(&self) -> String {
        match self {
            Instance::App(app) => app.name.clone(),
            Instance::Database(service) => service.name.clone(),
            Instance::Backend(app) => app.name.clone(),
            Instance::Gateway(_) => String::new(),
        }
    }
}

/// The instance with this id, of whichever service.
pub(super) async fn find(state: &ApiState, id: &str) -> Result<Option<Instance>, ApiError> {
    if let Some(service) = state.databases.as_ref().and_then(|d| d.get(id)) {
        return Ok(Some(Instance::Database(service)));
    }
    if let Some(app) = state.runtime.as_ref().and_then(|r| r.app(id)) {
        return Ok(Some(Instance::App(app)));
    }
    if let Some(gateway) = gateways::platform_json(state, id) {
        return Ok(Some(Instance::Gateway(gateway)));
    }
    Ok(state.tenants.app(id).await.map_err(store_error)?.map(Instance::Backend))
}

fn place(runtime: &updraft_runtime::Runtime, placement: Placement) -> Result<(), ApiError> {
    runtime.placements().set(placement).map(drop).map_err(|err| {
        tracing::error!(%err, "placements not written");
        ApiError::new(Code::Internal)
    })
}

fn store_error(err: updraft_store::StoreError) -> ApiError {
    tracing::error!(%err, "EDS apps not read");
    ApiError::new(Code::Internal)
}

/// The cloud's instances of `provider` (all when `None`): apps, databases, EDS apps, gateways.
pub(super) async fn in_cloud(
    state: &ApiState,
    cloud: &str,
    provider: Option<&str>,
) -> Result<Vec<InstanceWire>, ApiError> {
    let mut all = Vec::new();
    if let (None | Some("mar"), Some(runtime)) = (provider, &state.runtime) {
        all.extend(runtime.apps().into_iter().map(Instance::App));
    }
    if let (None | Some("mdb"), Some(databases)) = (provider, &state.databases) {
        all.extend(databases.all().into_iter().map(Instance::Database));
    }
    if let None | Some("eds") = provider {
        all.extend(state.tenants.apps().await.map_err(store_error)?.into_iter().map(Instance::Backend));
    }
    if let None | Some("mws") = provider {
        all.extend(
            gateways::ids(state).iter().filter_map(|id| gateways::platform_json(state, id)).map(Instance::Gateway),
        );
    }
    Ok(all.iter().filter(|i| i.cloud(state) == cloud).map(|i| i.json(state)).collect())
}

/// Makes an `eds` app or an `mws` gateway named `name` in `cloud`.
pub(super) async fn create_other(
    state: &ApiState,
    provider: &str,
    name: &str,
    cloud: &str,
) -> Result<Instance, ApiError> {
    let runtime = runtime(state)?;
    let instance = match provider {
        "eds" => {
            let app = state.tenants.create_app(name, &updraft_store::AccessDefaults::for_environment).await;
            Instance::Backend(app.map_err(store_error)?)
        }
        _ => {
            if let Some(why) = names::name_error(name) {
                return Err(ApiError::field("name", why.replace("an app", "a gateway")));
            }
            Instance::Gateway(gateways::create_for_platform(state, &format!("mws-{DATACENTER}-{name}")).await?)
        }
    };
    let placement = Placement { cloud: cloud.to_owned(), tags: Vec::new(), ..instance.placement(state) };
    place(runtime, placement)?;
    Ok(instance)
}

/// Deletes an instance of any service, with what hangs on it (attachments, placements).
pub(super) async fn delete(state: &ApiState, instance: Instance) -> Result<(), ApiError> {
    let (provider, id) = match &instance {
        Instance::Database(service) => return delete_service(state, &service.id).await,
        Instance::App(app) => {
            runtime(state)?.delete_app(&app.id).await.map_err(runtime_error)?;
            forget_app(state, &app.id).await;
            return Ok(());
        }
        Instance::Backend(app) => {
            state.tenants.delete_app(&app.id).await.map_err(store_error)?;
            ("eds", app.id.clone())
        }
        Instance::Gateway(gateway) => {
            let id = gateway["id"].as_str().unwrap_or_default().to_owned();
            gateways::remove_for_platform(state, &id).await?;
            ("mws", id)
        }
    };
    if let Some(Err(err)) = state.runtime.as_ref().map(|runtime| runtime.placements().remove(provider, &id)) {
        tracing::warn!(%err, %id, "placement not forgotten");
    }
    Ok(())
}
