//! Read-only views: `/v1/switches` and `/healthz`.

use axum::extract::State;
use axum::Json;
use port25_controller::SwitchStatus;
use serde::Serialize;

use crate::AppState;

#[derive(Serialize)]
pub(crate) struct SwitchList {
    switches: Vec<SwitchStatus>,
}

/// `GET /v1/switches`: every switch session, ordered by dpid then session.
pub(crate) async fn list(State(state): State<AppState>) -> Json<SwitchList> {
    Json(SwitchList { switches: state.fleet.snapshot() })
}

#[derive(Serialize)]
pub(crate) struct Health {
    status: &'static str,
    policy_version: u64,
    exemptions: usize,
    switches: usize,
}

/// `GET /healthz`. Answers from the published snapshot and the fleet view
/// only, without touching the store, so it stays cheap and never blocks
/// behind a slow disk.
pub(crate) async fn health(State(state): State<AppState>) -> Json<Health> {
    let (policy_version, exemptions) = {
        let snap = state.policy.borrow();
        (snap.version, snap.exemptions.len())
    };
    Json(Health { status: "ok", policy_version, exemptions, switches: state.fleet.len() })
}
