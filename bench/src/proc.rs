//! The things the benchmark starts and must clean up: port25d processes
//! and OVS bridges. Both register in `$P25BENCH_RUN/` so `run.sh`'s trap
//! can remove them if this driver is killed.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::http;

static BRIDGES: AtomicU32 = AtomicU32::new(0);

pub fn run_dir() -> PathBuf {
    std::env::var_os("P25BENCH_RUN").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("p25bench"))
}

fn register(kind: &str, what: &str) {
    use std::io::Write;
    let dir = run_dir();
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(kind)) {
        let _ = writeln!(f, "{what}");
    }
}

pub fn sh(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd).args(args).output().with_context(|| format!("cannot run {cmd}"))?;
    if !out.status.success() {
        bail!("{cmd} {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Peak and current resident set of a process, in KiB (VmHWM, VmRSS).
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// A port25d process on loopback ports with its own data directory.
pub struct Port25d {
    child: Child,
    pub api: SocketAddr,
    pub openflow: SocketAddr,
}

impl Port25d {
    pub fn start(bin: &Path, data_dir: &Path, log: &Path) -> anyhow::Result<Port25d> {
        let api = free_port()?;
        let openflow = free_port()?;
        let cfg = data_dir.with_extension("toml");
        std::fs::write(
            &cfg,
            format!(
                "[openflow]\nlisten = \"{openflow}\"\nmax_switches = 4096\n[api]\nlisten = \"{api}\"\n\
                 [store]\ndata_dir = \"{}\"\n[log]\nfilter = \"warn\"\n",
                data_dir.display()
            ),
        )?;
        let logf = std::fs::File::create(log)?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        register("pids", &child.id().to_string());
        let d = Port25d { child, api, openflow };
        let deadline = Instant::now() + Duration::from_secs(120);
        while http::call(api, "GET", "/healthz", None).is_err() {
            if Instant::now() > deadline {
                bail!("port25d did not answer /healthz within 120 s (log: {})", log.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(d)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn health(&self) -> anyhow::Result<Value> {
        Ok(http::call(self.api, "GET", "/healthz", None)?.1)
    }

    pub fn policy_version(&self) -> anyhow::Result<u64> {
        self.health()?["policy_version"].as_u64().context("healthz policy_version")
    }

    pub fn switches(&self) -> anyhow::Result<Vec<Value>> {
        let (_, v) = http::call(self.api, "GET", "/v1/switches", None)?;
        Ok(v["switches"].as_array().cloned().unwrap_or_default())
    }

    /// Graceful stop (SIGTERM), then kill after 10 s.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Port25d {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// An OVS bridge of the kind the issue's references use: userspace
/// datapath, OpenFlow 1.3, fail_mode=secure, no in-band flows. Unique
/// name, deleted on drop.
pub struct Bridge {
    pub name: String,
    pub dpid: u64,
}

impl Bridge {
    pub fn new() -> anyhow::Result<Bridge> {
        let n = BRIDGES.fetch_add(1, Ordering::Relaxed);
        let prefix = std::env::var("P25BENCH_PREFIX").unwrap_or_else(|_| format!("p25b{}", std::process::id() % 10000));
        let name = format!("{prefix}x{n}");
        let dpid = 0x00b0_0000_0000_0000 | (u64::from(std::process::id()) << 8) | u64::from(n);
        register("bridges", &name);
        sh(
            "ovs-vsctl",
            &[
                "--timeout=20",
                "add-br",
                &name,
                "--",
                "set",
                "bridge",
                &name,
                "datapath_type=netdev",
                "protocols=OpenFlow13",
                "fail_mode=secure",
                &format!("other-config:datapath-id={dpid:016x}"),
                "other-config:disable-in-band=true",
            ],
        )?;
        Ok(Bridge { name, dpid })
    }

    pub fn dpid_hex(&self) -> String {
        format!("{:016x}", self.dpid)
    }

    pub fn attach(&self, of: SocketAddr) -> anyhow::Result<()> {
        sh("ovs-vsctl", &["--timeout=20", "set-controller", &self.name, &format!("tcp:{of}")])?;
        Ok(())
    }

    /// Point the controller nowhere (as an outage would); flows stay.
    pub fn detach(&self) -> anyhow::Result<()> {
        sh("ovs-vsctl", &["--timeout=20", "set-controller", &self.name, "tcp:127.0.0.1:1"])?;
        Ok(())
    }

    pub fn flow_count(&self) -> anyhow::Result<usize> {
        let out = sh("ovs-ofctl", &["-O", "OpenFlow13", "--no-stats", "dump-flows", &self.name])?;
        Ok(out.lines().filter(|l| l.contains("priority=")).count())
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ovs-vsctl").args(["--timeout=20", "--if-exists", "del-br", &self.name]).status();
    }
}
