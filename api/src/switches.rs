//! Read-only views: `/v1/switches` and `/healthz`.

use axum::extract::State;
use axum::Json;
use port25_controller::SwitchStatus;
use serde::Serialize;

use crate::extract::NoQuery;
use crate::AppState;

#[derive(Serialize)]
pub(crate) struct SwitchList {
    switches: Vec<SwitchStatus>,
}

/// `GET /v1/switches`: every switch session, ordered by dpid then session.
#[utoipa::path(
    get,
    path = "/v1/switches",
    tag = "operators",
    responses(
        (status = 200, description = "Every switch session", body = crate::openapi::Object),
        (status = 400, description = "A query parameter (this route takes none); `field` names it", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or an unknown bearer token (when tokens are configured)", body = crate::openapi::ErrorBody),
        (status = 500, description = "Server-side failure (generic body; the cause is logged)", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn list(State(state): State<AppState>, _: NoQuery) -> Json<SwitchList> {
    Json(SwitchList { switches: state.fleet.snapshot() })
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    status: &'static str,
    policy_version: u64,
    exemptions: usize,
    switches: usize,
}

/// `GET /healthz`. Answers from the published snapshot and the fleet view
/// only, without touching the store, so it stays cheap and never blocks
/// behind a slow disk.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operators",
    security(()),
    responses(
        (status = 200, description = "Always ok while port25d runs", body = Health),
        (status = 400, description = "A query parameter (this route takes none); `field` names it", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn health(State(state): State<AppState>, _: NoQuery) -> Json<Health> {
    let (policy_version, exemptions) = {
        let snap = state.policy.borrow();
        (snap.version, snap.exemptions.len())
    };
    Json(Health { status: "ok", policy_version, exemptions, switches: state.fleet.len() })
}
