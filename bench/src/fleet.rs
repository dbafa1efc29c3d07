//! A fleet of simulated switches in this process, on its own runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use port25_sim::{Fabric, Switch, SwitchConfig};
use tokio::sync::watch;

pub struct Fleet {
    pub rt: tokio::runtime::Runtime,
    pub fabric: Arc<Fabric>,
    pub switches: Vec<Switch>,
    stop: watch::Sender<bool>,
}

impl Fleet {
    /// `n` switches with dpids `base+1..=base+n`, connected to `controller`
    /// (each reconnects after a second if its connection fails).
    pub fn start(n: usize, base: u64, controller: SocketAddr) -> anyhow::Result<Fleet> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let fabric = Fabric::new();
        let (stop, stop_rx) = watch::channel(false);
        let mut switches = Vec::with_capacity(n);
        for i in 0..n {
            let sw = Switch::new(SwitchConfig::new(base + 1 + i as u64), fabric.clone());
            switches.push(sw.clone());
            let mut stop_rx = stop_rx.clone();
            rt.spawn(async move {
                loop {
                    let mut s2 = stop_rx.clone();
                    let _ = sw
                        .run(controller, async move {
                            let _ = s2.wait_for(|v| *v).await;
                        })
                        .await;
                    if *stop_rx.borrow() {
                        return;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop_rx.wait_for(|v| *v) => return,
                    }
                }
            });
        }
        Ok(Fleet { rt, fabric, switches, stop })
    }

    /// Bytes the fleet's flow state takes: shared blobs plus every table.
    pub fn flow_state_bytes(&self) -> (usize, usize, usize) {
        let (blobs, blob_bytes) = self.fabric.interner.stats();
        let tables: usize = self.switches.iter().map(|s| s.table_bytes()).sum();
        (blobs, blob_bytes, tables)
    }

    pub fn shutdown(self) {
        let _ = self.stop.send(true);
        self.rt.shutdown_timeout(Duration::from_secs(5));
    }
}
