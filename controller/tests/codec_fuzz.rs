//! A million inputs through the framing and `decode_message`: random bytes
//! and mutations of valid messages of every kind. No dependency: a seeded
//! splitmix64 drives it, and the seed is printed so a failure can be
//! replayed with `P25_FUZZ_SEED=<seed>`.
//!
//! Besides "no panic", it checks oracles that can fail: every frame's body
//! is its header length minus 8, framing never consumes more than it was
//! given, feeding the same bytes in pieces yields the same frames, and a
//! decoded flow's `matcher` is what its `raw_match` decodes to.

use std::time::Instant;

use bytes::BytesMut;
use port25_controller::ofp::switch::{
    encode_barrier_reply, encode_desc_reply, encode_experimenter, encode_features_reply, encode_flow_stats_reply,
    encode_multipart_reply, encode_port_status,
};
use port25_controller::ofp::*;
use port25_rules::{Family, FlowAction, FragMatch, Match, Prefix};
use tokio_util::codec::Decoder;

const INPUTS: u64 = 1_000_000;

thread_local! {
    /// Flow stats records decoded so far (to show the flow parser is reached).
    static FLOWS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// The same for OpenFlow 1.0 flow stats records.
    static FLOWS10: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform-ish in 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

fn prefix(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn flow(m: &Match, action: Option<FlowAction>, raw: Option<&[u8]>) -> FlowStats {
    let mut oxm = BytesMut::new();
    match raw {
        Some(r) => oxm.extend_from_slice(r),
        None => encode_match(&mut oxm, m),
    }
    FlowStats {
        table_id: 0,
        priority: 30000,
        cookie: 0x2525_0100_0000_0001,
        packet_count: 1,
        byte_count: 64,
        duration_sec: 5,
        idle_timeout: 0,
        hard_timeout: 0,
        flags: 0,
        raw_match: oxm.freeze(),
        matcher: Some(m.clone()),
        action,
    }
}

/// One valid message of every kind we decode or send.
fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut push = |f: &dyn Fn(&mut BytesMut)| {
        let mut b = BytesMut::new();
        f(&mut b);
        out.push(b.to_vec());
    };
    push(&|b| encode_hello(b, 1, &[OFP10, OFP13]));
    push(&|b| encode_hello(b, 1, &[OFP10]));
    push(&|b| encode_error(b, OFP13, 2, OFPET_HELLO_FAILED, OFPHFC_INCOMPATIBLE, b"need 1.3"));
    push(&|b| encode_error(b, OFP13, 2, OFPET_EXPERIMENTER, 7, &[0, 0, 0x23, 0x20, 1, 2]));
    push(&|b| encode_echo_request(b, OFP13, 3, b"ping"));
    push(&|b| encode_echo_reply(b, OFP10, 3, b"pong"));
    push(&|b| encode_experimenter(b, 4, 0x2320, 9, b"xyz"));
    push(&|b| {
        let f = Features { datapath_id: 0xabc, n_buffers: 0, n_tables: 254, auxiliary_id: 0, capabilities: 0x4f };
        encode_features_reply(b, 5, &f)
    });
    push(&|b| encode_port_status(b, 6, 2, 3, "eth3"));
    push(&|b| {
        let d = SwitchDesc {
            mfr: "Nicira".into(),
            hw: "OVS".into(),
            sw: "3.1".into(),
            serial: "1".into(),
            dp: "br0".into(),
        };
        encode_desc_reply(b, 7, &d)
    });
    push(&|b| encode_multipart_reply(b, 8, 13, false, &[1, 2, 3, 4, 5, 6, 7, 8]));
    push(&|b| encode_barrier_reply(b, 9));
    push(&|b| {
        let v4 = Match::tcp(Family::V4);
        let flows = [
            flow(&v4.clone().with_tcp_dst(25), Some(FlowAction::Drop), None),
            flow(&Match::tcp_from(prefix("2001:db8::/64")), Some(FlowAction::Normal), None),
            flow(&v4.with_ip_frag(FragMatch::Any), Some(FlowAction::GotoTable(3)), None),
            flow(&Match::tcp_to(prefix("203.0.113.0/24")), None, None),
            // A foreign match: in_port, an unknown class.
            flow(&Match::any(), Some(FlowAction::Drop), Some(&[0x80, 0, 0, 4, 0, 0, 0, 1, 0, 3, 2, 2, 0xab, 0xcd])),
        ];
        encode_flow_stats_reply(b, 10, true, &flows).unwrap()
    });
    push(&|b| encode_flow_stats_reply(b, 11, false, &[]).unwrap());
    // The flow stats parser is the most intricate: give it more seeds.
    for (m, a) in [
        (Match::tcp(Family::V6).with_tcp_dst(25), Some(FlowAction::Drop)),
        (Match::tcp_from(prefix("203.0.113.7/32")), Some(FlowAction::Normal)),
        (Match::tcp(Family::V4).with_ip_frag(FragMatch::Later).with_tcp_src(25), None),
        (Match::any(), Some(FlowAction::GotoTable(1))),
    ] {
        push(&|b| encode_flow_stats_reply(b, 17, false, &[flow(&m, a, None), flow(&m, a, None)]).unwrap());
    }
    push(&|b| encode_features_request(b, 12));
    push(&|b| encode_barrier_request(b, 13));
    push(&|b| encode_desc_request(b, 14));
    push(&|b| encode_flow_stats_request(b, 15, 0xff, 0x2525 << 48, 0xffff << 48));
    // OpenFlow 1.0: what a 1.0 switch sends, and what port25 sends to one.
    push(&|b| {
        let f = Features { datapath_id: 0x10a0, n_buffers: 256, n_tables: 254, auxiliary_id: 0, capabilities: 0xc7 };
        v10::encode_features_reply(b, 20, &f)
    });
    push(&|b| v10::encode_port_status(b, 21, 0, 2, "eth2"));
    push(&|b| v10::encode_barrier_reply(b, 22));
    push(&|b| v10::encode_vendor(b, 23, 0x2320, &[0, 0, 0, 10, 1, 2, 3, 4]));
    for more in [false, true] {
        push(&|b| {
            let flows: Vec<v10::FlowStats10> = [
                (Match::tcp(Family::V4).with_tcp_dst(25), Some(FlowAction::Drop)),
                (Match::tcp_to(prefix("203.0.113.0/24")), Some(FlowAction::Normal)),
                (Match::any(), None),
            ]
            .into_iter()
            .map(|(m, action)| v10::FlowStats10 {
                table_id: 0,
                priority: 30000,
                cookie: 0x2525 << 48,
                packet_count: 1,
                byte_count: 64,
                duration_sec: 1,
                idle_timeout: 0,
                hard_timeout: 0,
                raw_match: v10::match_bytes(&m).unwrap(),
                matcher: None,
                action,
            })
            .collect();
            v10::encode_flow_stats_reply(b, 24, more, &flows).unwrap()
        });
    }
    push(&|b| v10::encode_flow_stats_request(b, 25, 0));
    push(&|b| {
        let m = Match::tcp_from(prefix("198.51.100.7/32"));
        let fm = v10::FlowMod10 {
            command: v10::FlowModCommand10::Add,
            table_id: 0,
            priority: 40000,
            cookie: 1,
            matcher: v10::MatchSpec10::Typed(&m),
            action: FlowAction::Normal,
        };
        v10::encode_flow_mod(b, 26, &fm).unwrap()
    });
    push(&|b| {
        let m = Match::tcp_from(prefix("198.51.100.0/24")).with_tcp_dst(25);
        let fm = FlowMod {
            command: FlowModCommand::Add,
            table_id: 0,
            priority: 40000,
            cookie: 1,
            cookie_mask: 0,
            matcher: MatchSpec::Typed(&m),
            action: FlowAction::Normal,
            flags: 0,
        };
        encode_flow_mod(b, 16, &fm)
    });
    out
}

fn mutate(rng: &mut SplitMix, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(3) {
        if v.is_empty() {
            v.push(rng.byte());
        }
        match rng.below(7) {
            0 => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len());
                v[i] = rng.byte();
            }
            2 => {
                // Rewrite a 16-bit field: the header length, or any inner
                // length (flow stats record, match, OXM, instruction, ...).
                let i = if rng.below(2) == 0 { 2 } else { rng.below(v.len()) & !1 };
                let val: u16 = match rng.below(4) {
                    0 => 0,
                    1 => rng.below(16) as u16,
                    2 => 0xffff,
                    _ => rng.next() as u16,
                };
                if i + 2 <= v.len() {
                    v[i..i + 2].copy_from_slice(&val.to_be_bytes());
                }
            }
            3 => v.truncate(rng.below(v.len() + 1)),
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(v.len() + 1);
                v.truncate(cut);
                v.extend_from_slice(&other[rng.below(other.len())..]);
            }
            5 => {
                let i = rng.below(v.len() + 1);
                let n = 1 + rng.below(8);
                let junk: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                v.splice(i..i, junk);
            }
            _ => {
                let i = rng.below(v.len());
                let n = rng.below(v.len() - i + 1).min(16);
                v.drain(i..i + n);
            }
        }
    }
    // Keep the header length consistent half the time so the body parsers,
    // not just the framing, see the mutation.
    if v.len() >= 8 && rng.below(2) == 0 {
        let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
        v[2..4].copy_from_slice(&len.to_be_bytes());
    }
    v
}

fn random_bytes(rng: &mut SplitMix) -> Vec<u8> {
    let n = rng.below(200);
    let mut v: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
    if v.len() >= 8 && rng.below(2) == 0 {
        v[0] = [OFP10, OFP13][rng.below(2)];
        v[1] = rng.below(24) as u8;
        let len = u16::try_from(v.len()).unwrap();
        v[2..4].copy_from_slice(&len.to_be_bytes());
    }
    v
}

/// Frame `input` fed in the given pieces; decode every frame. Returns the
/// frames and the framing error, if any.
fn run(input: &[u8], cuts: &[usize]) -> (Vec<Frame>, Option<DecodeError>) {
    let mut codec = OfpCodec::new();
    let mut src = BytesMut::new();
    let mut frames = Vec::new();
    let mut consumed = 0usize;
    let mut fed = 0usize;
    let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c < input.len()).collect();
    bounds.push(input.len());
    for end in bounds {
        if end < fed {
            continue;
        }
        src.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            let before = src.len();
            match codec.decode(&mut src) {
                Ok(Some(frame)) => {
                    let taken = before - src.len();
                    let start = consumed;
                    consumed += taken;
                    assert!(consumed <= fed, "consumed {consumed} of {fed} bytes");
                    let hdr_len = usize::from(u16::from_be_bytes([input[start + 2], input[start + 3]]));
                    assert_eq!(taken, hdr_len, "frame size vs header length");
                    assert_eq!(frame.body.len(), hdr_len - 8, "body vs header length");
                    assert_eq!(&frame.body[..], &input[start + 8..start + hdr_len]);
                    FLOWS.with(|c| c.set(c.get() + check_message(&frame) as u64));
                    frames.push(frame);
                }
                Ok(None) => {
                    assert_eq!(src.len(), before, "Ok(None) consumed bytes");
                    break;
                }
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

/// Check a decoded flow stats reply; returns how many flows it held.
fn check_message(frame: &Frame) -> usize {
    let Ok(Message::MultipartReply(r)) = decode_message(frame) else { return 0 };
    if let MultipartBody::Flow10(flows) = &r.body {
        FLOWS10.with(|c| c.set(c.get() + flows.len() as u64));
        for f in flows {
            assert_eq!(v10::decode_match(&f.raw_match), f.matcher, "1.0 matcher vs raw_match");
            if let Some(m) = &f.matcher {
                assert_eq!(
                    v10::decode_match(&v10::match_bytes(m).unwrap()).as_ref(),
                    Some(m),
                    "1.0 re-encoded matcher"
                );
            }
        }
        return flows.len();
    }
    let MultipartBody::Flow(flows) = r.body else { return 0 };
    let n = flows.len();
    for f in flows {
        assert_eq!(decode_match(&f.raw_match), Ok(f.matcher.clone()), "matcher vs raw_match");
        if let Some(m) = f.matcher {
            let mut oxm = BytesMut::new();
            encode_match(&mut oxm, &m);
            assert_eq!(decode_match(&oxm), Ok(Some(m)), "re-encoded matcher");
        }
    }
    n
}

#[test]
fn a_million_inputs_never_panic_and_frame_consistently() {
    let seed = std::env::var("P25_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x2525_0c0d_ec00_0001u64);
    println!("codec fuzz seed: {seed} (replay with P25_FUZZ_SEED={seed})");
    let mut rng = SplitMix(seed);
    let seeds = seeds();
    for s in &seeds {
        let (frames, err) = run(s, &[]);
        assert_eq!((frames.len(), err), (1, None), "seed {s:02x?}");
        decode_message(&frames[0]).unwrap_or_else(|e| panic!("seed {s:02x?}: {e}"));
    }
    let started = Instant::now();
    let (mut frames_seen, mut decoded_ok) = (0u64, 0u64);
    for i in 0..INPUTS {
        let input = if i % 4 == 0 { random_bytes(&mut rng) } else { mutate(&mut rng, &seeds) };
        let (frames, err) = run(&input, &[]);
        frames_seen += frames.len() as u64;
        decoded_ok += frames.iter().filter(|f| decode_message(f).is_ok()).count() as u64;
        if i % 16 == 0 && !input.is_empty() {
            // The same bytes in three pieces frame identically.
            let cuts = [rng.below(input.len()), rng.below(input.len())];
            let mut cuts = cuts.to_vec();
            cuts.sort_unstable();
            let (pieces, perr) = run(&input, &cuts);
            assert_eq!((&pieces, &perr), (&frames, &err), "input {input:02x?} cut at {cuts:?}");
        }
    }
    let took = started.elapsed();
    let flows = FLOWS.with(|c| c.get());
    println!("{INPUTS} inputs, {frames_seen} frames, {decoded_ok} decoded ok, {flows} flow records, in {took:?}");
    assert!(flows > INPUTS / 20, "only {flows} flow records decoded");
    let flows10 = FLOWS10.with(|c| c.get());
    assert!(flows10 > INPUTS / 200, "only {flows10} OpenFlow 1.0 flow records decoded");
    // Mutations must still reach the message parsers, or this test proves little.
    assert!(decoded_ok > INPUTS / 4, "only {decoded_ok} messages decoded");
}

/// Regenerate the cargo-fuzz seed corpus (`fuzz/corpus/decode/`) from the
/// same valid messages: `cargo test -p port25-controller --test codec_fuzz -- --ignored`.
#[test]
#[ignore = "writes files; run by hand when the encoders change"]
fn write_fuzz_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/decode");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in seeds().iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}-type{}.bin", s[1])), s).unwrap();
    }
}
