//! A whole switch session fed arbitrary bytes: the input is cut into
//! chunks the "switch" writes between reads of what the controller sent,
//! after a valid Hello and Features reply (so the rounds are reached).
//! The session must never panic, and must end once the switch goes away.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use port25_controller::metrics::Metrics;
use port25_controller::ofp::{self, switch, Features};
use port25_controller::session::{self, Admission, SessionConfig, Shared};
use port25_controller::Fleet;
use port25_rules::Snapshot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    rt.block_on(async {
        let (ctrl, mut sw) = tokio::io::duplex(1 << 16);
        let (_tx, rx) = watch::channel(Arc::new(Snapshot::from_list(Vec::new())));
        let cfg = SessionConfig { request_timeout: Duration::from_secs(1), ..SessionConfig::default() };
        let shared = Shared::new(cfg, rx, Fleet::new(), CancellationToken::new(), Metrics::new());
        let task = tokio::spawn(session::run(ctrl, "127.0.0.1:1".parse().unwrap(), 1, shared, Admission::unlimited()));
        let mut b = BytesMut::new();
        ofp::encode_hello(&mut b, 1, &[ofp::OFP13]);
        switch::encode_features_reply(
            &mut b,
            2,
            &Features { datapath_id: 1, n_buffers: 0, n_tables: 254, auxiliary_id: 0, capabilities: 0 },
        );
        let _ = sw.write_all(&b).await;
        let mut out = vec![0u8; 1 << 16];
        // Chunk boundaries come from the input too: first byte of each chunk.
        let mut rest = data;
        while !rest.is_empty() {
            let n = (usize::from(rest[0]) + 1).min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            if sw.write_all(chunk).await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
            let _ = tokio::time::timeout(Duration::from_millis(1), sw.read(&mut out)).await;
        }
        drop(sw);
        // Paused time: timers fire as soon as everything is idle.
        let ended = tokio::time::timeout(Duration::from_secs(120), task).await;
        assert!(ended.is_ok(), "session did not end after the switch went away");
        assert!(ended.unwrap().is_ok(), "session panicked");
    });
});
