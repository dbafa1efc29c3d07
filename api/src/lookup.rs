//! `GET /v1/lookup?ip=ADDR`: what port25 does to one address, for abuse
//! desks: the verdict for mail it sends (outbound) and mail sent to it
//! (inbound), the exemptions that cover it, and per switch whether the
//! verdict's flows are in place.
//!
//! Every verdict comes from [`port25_rules::decide`], the reference the
//! compiled flows are property-tested against, so the API cannot tell a
//! different story from the switches.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use port25_controller::SwitchState;
use port25_rules::model::clip;
use port25_rules::{decide, Dpid, Exemption, Fragment, Packet, Scope, Verdict};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::exemptions::query_error;
use crate::AppState;

/// An ephemeral client port for the probe packets.
const CLIENT_PORT: u16 = 40000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LookupParams {
    ip: Option<String>,
}

/// What port25 does to TCP port 25 for the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    Blocked,
    Exempt,
}

impl From<Verdict> for Outcome {
    fn from(v: Verdict) -> Outcome {
        match v {
            Verdict::Drop => Outcome::Blocked,
            Verdict::Forward => Outcome::Exempt,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct Lookup {
    ip: IpAddr,
    /// The policy version the answer is about.
    policy_version: u64,
    /// Verdicts on a switch that no switch-scoped exemption names (that
    /// is, from the exemptions that apply everywhere).
    outbound: Outcome,
    inbound: Outcome,
    /// Every exemption covering the address (`switches` says where).
    exemptions: Vec<Exemption>,
    /// Every connected switch.
    switches: Vec<SwitchVerdict>,
}

#[derive(Serialize)]
pub(crate) struct SwitchVerdict {
    dpid: Dpid,
    state: SwitchState,
    /// TCP from the address to port 25 on this switch.
    outbound: Outcome,
    /// TCP from port 25 to the address on this switch.
    inbound: Outcome,
    /// Ids of the covering exemptions that apply on this switch.
    exempted_by: Vec<port25_rules::ExemptionId>,
    /// The switch is in sync and has confirmed `policy_version` or later,
    /// so its flows give these verdicts now.
    flows_in_place: bool,
    /// The policy version the switch has confirmed.
    policy_version: u64,
}

/// The remote end of the probe packets. Only exemptions covering the
/// looked-up address are consulted, so the remote cannot exempt the probe.
fn remote(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

fn verdicts(covering: &[&Exemption], dpid: Dpid, ip: IpAddr) -> (Outcome, Outcome) {
    let tcp = |src, dst, src_port, dst_port| Packet {
        vlan: None,
        headers: port25_rules::Headers::Readable,
        src,
        dst,
        ip_proto: 6,
        src_port,
        dst_port,
        fragment: Fragment::None,
    };
    let out = decide(covering.iter().copied(), dpid, &tcp(ip, remote(ip), CLIENT_PORT, 25));
    let inb = decide(covering.iter().copied(), dpid, &tcp(remote(ip), ip, 25, CLIENT_PORT));
    (out.into(), inb.into())
}

/// `GET /v1/lookup?ip=ADDR`.
#[utoipa::path(
    get,
    path = "/v1/lookup",
    tag = "operators",
    params(
        ("ip" = String, Query, description = "The address to look up")
    ),
    responses(
        (status = 200, description = "Verdicts, covering exemptions and per-switch flows in place", body = crate::openapi::Object),
        (status = 400, description = "Bad input; `field` names what to fix", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or an unknown bearer token (when tokens are configured)", body = crate::openapi::ErrorBody),
        (status = 500, description = "Server-side failure (generic body; the cause is logged)", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn lookup(
    State(state): State<AppState>,
    params: Result<Query<LookupParams>, QueryRejection>,
) -> Result<Json<Lookup>, ApiError> {
    let Query(p) = params.map_err(query_error)?;
    let raw =
        p.ip.ok_or_else(|| ApiError::field("ip", "ip is required: the address to look up, such as 203.0.113.7"))?;
    let ip: IpAddr = raw.trim_matches(|c: char| c.is_ascii_whitespace()).parse().map_err(|_| {
        ApiError::field("ip", format!("'{}' is not an IPv4 or IPv6 address (no prefix length)", clip(&raw)))
    })?;
    // `::ffff:198.51.100.7` is 198.51.100.7 as an IPv6 socket writes it. A
    // switch sees that host's packets as IPv4, so that is what is looked up.
    let ip = ip.to_canonical();
    let snap = state.writer.snapshot();
    let covering: Vec<&Exemption> = snap.exemptions.values().filter(|e| e.subscriber.contains(ip)).collect();
    let everywhere: Vec<&Exemption> = covering.iter().copied().filter(|e| e.switches == Scope::All).collect();
    // Any dpid will do for exemptions that apply everywhere.
    let (outbound, inbound) = verdicts(&everywhere, Dpid(0), ip);
    let switches = state
        .fleet
        .snapshot()
        .into_iter()
        .filter_map(|s| {
            let dpid = s.dpid?;
            let (outbound, inbound) = verdicts(&covering, dpid, ip);
            Some(SwitchVerdict {
                dpid,
                state: s.state,
                outbound,
                inbound,
                exempted_by: covering.iter().filter(|e| e.applies_to(dpid)).map(|e| e.id).collect(),
                flows_in_place: s.in_sync && s.policy_version >= snap.version,
                policy_version: s.policy_version,
            })
        })
        .collect();
    Ok(Json(Lookup {
        ip,
        policy_version: snap.version,
        outbound,
        inbound,
        exemptions: covering.into_iter().cloned().collect(),
        switches,
    }))
}
