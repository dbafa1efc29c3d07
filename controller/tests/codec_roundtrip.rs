//! What we encode decodes back to the same `Match` and `FlowAction`: a flow
//! mod's match and instructions, wrapped into a flow stats record (as a
//! switch would echo them), decode to what we asked for.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{Bytes, BytesMut};
use port25_controller::ofp::switch::encode_flow_stats_reply;
use port25_controller::ofp::{
    decode_match, decode_message, encode_flow_mod, encode_match, FlowMod, FlowModCommand, FlowStats, MatchSpec,
    Message, MultipartBody, OfpCodec,
};
use port25_rules::{Family, FlowAction, FragMatch, Match, Prefix};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

/// Split an encoded flow mod into (OXM bytes, instruction bytes).
fn flow_mod_parts(wire: &[u8]) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(usize::from(u16::from_be_bytes([wire[2], wire[3]])), wire.len(), "header length");
    assert_eq!(&wire[48..50], &[0, 1], "OFPMT_OXM");
    let match_len = usize::from(u16::from_be_bytes([wire[50], wire[51]]));
    let padded = match_len.div_ceil(8) * 8;
    assert!(wire[48 + match_len..48 + padded].iter().all(|&b| b == 0), "zero padding");
    (wire[52..48 + match_len].to_vec(), wire[48 + padded..].to_vec())
}

/// A one-record flow stats reply holding `oxm` and `instructions`, built by hand.
fn echo_as_flow_stats(oxm: &[u8], instructions: &[u8]) -> Vec<u8> {
    let match_len = 4 + oxm.len();
    let padded = match_len.div_ceil(8) * 8;
    let rec_len = 48 + padded + instructions.len();
    let mut w = vec![4, 19, 0, 0, 0, 0, 0, 9, 0, 1, 0, 0, 0, 0, 0, 0];
    w.extend_from_slice(&u16::try_from(rec_len).unwrap().to_be_bytes());
    w.extend_from_slice(&[0; 10]);
    w.extend_from_slice(&30000u16.to_be_bytes());
    w.extend_from_slice(&[0; 34]);
    w.extend_from_slice(&[0, 1]);
    w.extend_from_slice(&u16::try_from(match_len).unwrap().to_be_bytes());
    w.extend_from_slice(oxm);
    w.resize(16 + 48 + padded, 0);
    w.extend_from_slice(instructions);
    let len = u16::try_from(w.len()).unwrap().to_be_bytes();
    w[2..4].copy_from_slice(&len);
    w
}

fn decode_one_flow(wire: &[u8]) -> FlowStats {
    let mut src = BytesMut::from(wire);
    let frame = OfpCodec::new().decode(&mut src).unwrap().unwrap();
    let Message::MultipartReply(r) = decode_message(&frame).unwrap() else { panic!("not a multipart reply") };
    let MultipartBody::Flow(mut flows) = r.body else { panic!("not flow stats") };
    assert_eq!(flows.len(), 1);
    flows.remove(0)
}

fn round_trip(m: &Match, action: FlowAction) {
    let mut wire = BytesMut::new();
    let fm = FlowMod {
        command: FlowModCommand::Add,
        table_id: 0,
        priority: 30000,
        cookie: 0x2525_0100_0000_0001,
        cookie_mask: 0,
        matcher: MatchSpec::Typed(m),
        action,
        flags: 0,
    };
    encode_flow_mod(&mut wire, 1, &fm);
    let (oxm, instructions) = flow_mod_parts(&wire);
    let flow = decode_one_flow(&echo_as_flow_stats(&oxm, &instructions));
    assert_eq!(flow.matcher.as_ref(), Some(m), "match {m}");
    assert_eq!(flow.action, Some(action), "action for {m}");
    assert_eq!(flow.raw_match, Bytes::from(oxm));

    // Deleting strictly with the raw bytes sends back exactly what we read.
    let mut del = BytesMut::new();
    let fm = FlowMod { command: FlowModCommand::DeleteStrict, matcher: MatchSpec::Raw(&flow.raw_match), ..fm };
    encode_flow_mod(&mut del, 2, &fm);
    let (raw_again, no_instructions) = flow_mod_parts(&del);
    assert_eq!(raw_again, flow.raw_match);
    assert!(no_instructions.is_empty());
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

#[test]
fn rules_constructors_round_trip() {
    let matches = [
        Match::tcp(Family::V4).with_tcp_dst(25),
        Match::tcp(Family::V6).with_tcp_dst(25),
        Match::tcp_from(p("203.0.113.7/32")),
        Match::tcp_from(p("203.0.113.0/24")),
        Match::tcp_from(p("2001:db8::25/128")),
        Match::tcp_from(p("2001:db8::/64")),
        Match::tcp_to(p("198.51.100.0/25")).with_tcp_src(25),
        Match::tcp(Family::V4).with_ip_frag(FragMatch::Any),
        Match::tcp(Family::V6).with_ip_frag(FragMatch::Later),
        Match::any(),
    ];
    for m in &matches {
        for action in [FlowAction::Drop, FlowAction::Normal, FlowAction::GotoTable(5)] {
            round_trip(m, action);
        }
    }
}

#[test]
fn switch_side_flow_stats_reply_round_trips() {
    let mut oxm = BytesMut::new();
    encode_match(&mut oxm, &Match::tcp(Family::V4).with_tcp_dst(25));
    let flow = FlowStats {
        table_id: 3,
        priority: 30000,
        cookie: 0x2525_0100_0000_0002,
        packet_count: 12,
        byte_count: 3400,
        duration_sec: 9,
        idle_timeout: 0,
        hard_timeout: 0,
        flags: 0,
        raw_match: oxm.freeze(),
        matcher: Some(Match::tcp(Family::V4).with_tcp_dst(25)),
        action: Some(FlowAction::Drop),
    };
    let unmodelled = FlowStats { action: None, ..flow.clone() };
    let mut wire = BytesMut::new();
    encode_flow_stats_reply(&mut wire, 7, true, &[flow.clone(), unmodelled.clone()]).unwrap();
    let mut src = wire;
    let frame = OfpCodec::new().decode(&mut src).unwrap().unwrap();
    let Message::MultipartReply(r) = decode_message(&frame).unwrap() else { panic!() };
    assert!(r.more);
    assert_eq!(r.body, MultipartBody::Flow(vec![flow, unmodelled]));
}

fn arb_prefix(family: Family) -> impl Strategy<Value = Prefix> {
    let max = if family == Family::V4 { 32u8 } else { 128 };
    (any::<u128>(), 1..=max).prop_map(move |(bits, len)| {
        let shift = u32::from(max - len);
        let addr = match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(((bits as u32) >> shift) << shift)),
            Family::V6 => {
                IpAddr::V6(Ipv6Addr::from(bits.checked_shr(shift).unwrap_or(0).checked_shl(shift).unwrap_or(0)))
            }
        };
        Prefix::new(addr, len).unwrap()
    })
}

fn arb_frag() -> impl Strategy<Value = FragMatch> {
    prop_oneof![
        Just(FragMatch::Any),
        Just(FragMatch::No),
        Just(FragMatch::First),
        Just(FragMatch::Later),
        Just(FragMatch::NotLater)
    ]
}

/// Any valid Match: optional IP family, then fields that fit it.
fn arb_match() -> impl Strategy<Value = Match> {
    prop_oneof![Just(None), Just(Some(Family::V4)), Just(Some(Family::V6))].prop_flat_map(|family| {
        let Some(f) = family else { return Just(Match::any()).boxed() };
        (
            proptest::option::of(prop_oneof![Just(6u8), any::<u8>()]),
            proptest::option::of(arb_prefix(f)),
            proptest::option::of(arb_prefix(f)),
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u16>()),
            proptest::option::of(arb_frag()),
        )
            .prop_filter_map("prerequisites", move |(proto, src, dst, sp, dp, frag)| {
                let tcp = proto == Some(6);
                let (sp, dp) = if tcp { (sp, dp) } else { (None, None) };
                Match::from_parts(Some(f.eth_type()), proto, src, dst, sp, dp, frag).ok()
            })
            .boxed()
    })
}

proptest! {
    #[test]
    fn match_encode_decode_round_trips(m in arb_match()) {
        let mut oxm = BytesMut::new();
        encode_match(&mut oxm, &m);
        prop_assert_eq!(decode_match(&oxm), Ok(Some(m.clone())));
        // The same fields in reverse order (switches reorder) decode the same.
        let mut tlvs = Vec::new();
        let mut rest = &oxm[..];
        while !rest.is_empty() {
            let len = 4 + usize::from(rest[3]);
            tlvs.push(&rest[..len]);
            rest = &rest[len..];
        }
        let reversed: Vec<u8> = tlvs.iter().rev().flat_map(|t| t.iter().copied()).collect();
        prop_assert_eq!(decode_match(&reversed), Ok(Some(m)));
    }
}
