//! A private Open vSwitch (its own ovsdb-server and ovs-vswitchd, in a
//! temporary directory, with the dummy datapath) for tests that change
//! daemon-wide OVS settings such as `set-ssl`: the machine's shared OVS,
//! and every other run using it, is left alone.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PrivateOvs {
    dir: tempfile::TempDir,
}

impl PrivateOvs {
    pub fn start() -> PrivateOvs {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_owned();
        let ovs = PrivateOvs { dir };
        ovs.cmd("ovsdb-tool", &["create", &ovs.p("conf.db"), "/usr/share/openvswitch/vswitch.ovsschema"]);
        ovs.cmd(
            "ovsdb-server",
            &[
                &ovs.p("conf.db"),
                &format!("--remote=punix:{}", ovs.p("db.sock")),
                &format!("--pidfile={}", ovs.p("ovsdb.pid")),
                &format!("--unixctl={}", ovs.p("ovsdb.ctl")),
                &format!("--log-file={}", ovs.p("ovsdb.log")),
                "--detach",
            ],
        );
        ovs.vsctl(&["--no-wait", "init"]);
        ovs.cmd(
            "ovs-vswitchd",
            &[
                &format!("unix:{}", ovs.p("db.sock")),
                "--enable-dummy=system",
                "--disable-system",
                &format!("--pidfile={}", ovs.p("vswitchd.pid")),
                &format!("--unixctl={}", ovs.p("vswitchd.ctl")),
                &format!("--log-file={}", ovs.p("vswitchd.log")),
                "--detach",
            ],
        );
        let _ = d;
        ovs
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn p(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn cmd(&self, prog: &str, args: &[&str]) -> String {
        let out = Command::new(prog)
            .args(args)
            .env("OVS_RUNDIR", self.dir.path())
            .env("OVS_LOGDIR", self.dir.path())
            .env("OVS_DBDIR", self.dir.path())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {prog}: {e} (install openvswitch-switch: scripts/setup-host.sh does)")
            });
        assert!(
            out.status.success(),
            "{prog} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.p("db.sock"));
        let mut all = vec![db.as_str(), "--timeout=10"];
        all.extend_from_slice(args);
        self.cmd("ovs-vsctl", &all)
    }

    /// A bridge on the dummy datapath, OpenFlow 1.3, fail_mode=secure.
    pub fn add_bridge(&self, name: &str, dpid: u64) {
        self.vsctl(&[
            "add-br",
            name,
            "--",
            "set",
            "bridge",
            name,
            "datapath_type=dummy",
            "protocols=OpenFlow13",
            "fail_mode=secure",
            &format!("other-config:datapath-id={dpid:016x}"),
            "other-config:disable-in-band=true",
        ]);
    }

    /// Our flows (cookie prefix 0x2525) in a bridge.
    pub fn our_flows(&self, bridge: &str) -> Vec<String> {
        let target = format!("unix:{}", self.p(&format!("{bridge}.mgmt")));
        let out = self.cmd("ovs-ofctl", &["-O", "OpenFlow13", "--no-stats", "dump-flows", &target]);
        out.lines().map(|l| l.trim().to_owned()).filter(|l| l.starts_with("cookie=0x2525")).collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vswitchd.log")).unwrap_or_default()
    }
}

impl Drop for PrivateOvs {
    fn drop(&mut self) {
        for ctl in ["vswitchd.ctl", "ovsdb.ctl"] {
            let _ = Command::new("ovs-appctl")
                .args(["-t", &self.p(ctl), "exit"])
                .env("OVS_RUNDIR", self.dir.path())
                .output();
        }
    }
}

/// Write a PEM file into `dir` and return its path.
pub fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    p
}
