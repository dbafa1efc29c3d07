//! `p25bench`: the driver behind `bench/run.sh`.
//!
//! `p25bench all --port25d BIN` runs every figure of issue 4 and prints one
//! table: figure | ours | reference | ratio | target | met?. Each heavy
//! phase runs in a child process of this binary (`preload`, `ovs`,
//! `fleet`, `api`) so that the simulator's memory is measured apart from
//! port25d's and one phase's peak does not leak into the next; each child
//! prints one JSON line.
//!
//! Not a test: figures drift with the machine's load, which is why every
//! target is a ratio against a reference measured in the same run, or an
//! absolute figure with its measurement stated.

mod fleet;
mod http;
mod proc;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use port25_rules::{
    compile, AuditAction, AuditContext, Change, Dpid, Exemption, ExemptionStore, NewExemption, PolicyConfig, Prefix,
    SledStore,
};
use serde_json::{json, Value};

use proc::{rss_kib, sh, Bridge, Port25d};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: usize) -> usize {
    arg(args, name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("preload") => {
            let dir = PathBuf::from(arg(&args, "--dir").context("--dir")?);
            let n = num(&args, "--count", 1000);
            let flows = arg(&args, "--flows-file").map(PathBuf::from);
            let t = Instant::now();
            preload(&dir, n, flows.as_deref())?;
            println!("{}", json!({"count": n, "secs": t.elapsed().as_secs_f64()}));
        }
        Some("ovs") => println!("{}", ovs_phase(&args)?),
        Some("fleet") => println!("{}", fleet_phase(&args)?),
        Some("api") => println!("{}", api_phase(&args)?),
        Some("compile") => {
            // compile() alone, in memory: the per-switch cost of a full round.
            let n = num(&args, "--count", 100_000);
            let shuffle = args.iter().any(|a| a == "--shuffle");
            let now = time::OffsetDateTime::now_utc();
            let ex: Vec<Exemption> = (1..=n)
                .map(|i| Exemption {
                    id: port25_rules::ExemptionId(i as u64),
                    // --shuffle: ids no longer in prefix order, as in a real store.
                    subscriber: if shuffle { subscriber((i * 48271) % 16_000_000 + 1) } else { subscriber(i) },
                    note: None,
                    created_at: now,
                    switches: port25_rules::Scope::All,
                    expires_at: None,
                    external_id: None,
                })
                .collect();
            let mut secs = Vec::new();
            for _ in 0..7 {
                let t = Instant::now();
                let flows = compile(&PolicyConfig::default(), ex.iter(), Dpid(1));
                secs.push(t.elapsed().as_secs_f64());
                assert_eq!(flows.len(), 2 * n + 7);
            }
            println!("{}", json!({"count": n, "shuffle": shuffle, "median_secs": median(&secs)}));
        }
        Some("all") => all(&args)?,
        _ => bail!(
            "usage: p25bench all --port25d BIN [--work DIR] [--figures abcdef] [--runs N] [--sizes 1000,10000,100000]"
        ),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Exemptions and flows

/// The i-th benchmark subscriber (i ≥ 1): distinct /32s in 10.0.0.0/8.
fn subscriber(i: usize) -> Prefix {
    let i = i as u32;
    format!("10.{}.{}.{}/32", (i >> 16) & 255, (i >> 8) & 255, i & 255).parse().expect("valid prefix")
}

/// The i-th bulk subscriber (i ≥ 1): distinct /32s in 100.64.0.0/10.
fn bulk_subscriber(i: usize) -> Prefix {
    let i = i as u32;
    format!("100.{}.{}.{}/32", 64 + ((i >> 16) & 63), (i >> 8) & 255, i & 255).parse().expect("valid prefix")
}

/// Store `n` exemptions in a fresh sled store (batches of 5,000, one
/// commit each) and optionally write the flows port25d will compile for
/// them as an `ovs-ofctl add-flows` file.
fn preload(dir: &Path, n: usize, flows_file: Option<&Path>) -> anyhow::Result<()> {
    let store = SledStore::open(dir)?;
    let mut all: Vec<Exemption> = Vec::with_capacity(n);
    let mut i = 1;
    while i <= n {
        let mut change = Change::new(AuditAction::Grant);
        let end = (i + 5000).min(n + 1);
        change.create = (i..end).map(|k| NewExemption::new(subscriber(k))).collect();
        let done = store.commit(change, &AuditContext::port25d(), time::OffsetDateTime::now_utc())?;
        all.extend(done.created);
        i = end;
    }
    if let Some(path) = flows_file {
        // Same flows for every dpid: the exemptions apply everywhere.
        let flows = compile(&PolicyConfig::default(), all.iter(), Dpid(1));
        let mut text = String::with_capacity(flows.len() * 80);
        for f in &flows {
            // FlowSpec prints in ovs-ofctl syntax; the empty match prints as "any".
            text.push_str(&f.to_string().replace(",any actions", " actions"));
            text.push('\n');
        }
        std::fs::write(path, text)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Phase: one real OVS bridge against port25d and against ovs-ofctl

fn wait_until<T>(limit: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(every);
    }
}

fn entry(d: &Port25d, dpid: &str) -> Option<Value> {
    d.switches().ok()?.into_iter().find(|s| s["dpid"] == dpid)
}

/// `ovs` phase: n exemptions, `runs` fresh bridges converged by port25d
/// and `runs` by `ovs-ofctl --bundle add-flows`, alternating; then a
/// reconnect of the last in-sync bridge and `ovs-ofctl dump-flows` of it.
fn ovs_phase(args: &[String]) -> anyhow::Result<Value> {
    let bin = PathBuf::from(arg(args, "--port25d").context("--port25d")?);
    let work = PathBuf::from(arg(args, "--work").context("--work")?);
    let n = num(args, "--count", 1000);
    let runs = num(args, "--runs", 3);
    let data = work.join(format!("ovs-{n}"));
    let flows_file = work.join(format!("flows-{n}.txt"));
    let _ = std::fs::remove_dir_all(&data);
    preload(&data, n, Some(&flows_file))?;
    let expected = 2 * n + 7;
    let d = Port25d::start(&bin, &data, &work.join(format!("port25d-ovs-{n}.log")))?;
    let want = d.policy_version()?;
    let (rss_idle, _) = rss_kib(d.pid());
    let mut ours = Vec::new();
    let mut reference = Vec::new();
    let mut last_round = Value::Null;
    let mut keep: Option<Bridge> = None;
    for r in 0..runs {
        // Reference: a fresh bridge of the same kind, the same flows in one bundle.
        {
            let br = Bridge::new()?;
            let t = Instant::now();
            sh("ovs-ofctl", &["-O", "OpenFlow13", "--bundle", "add-flows", &br.name, &flows_file.to_string_lossy()])?;
            reference.push(t.elapsed().as_secs_f64());
            let got = br.flow_count()?;
            if got != expected {
                bail!("ovs-ofctl left {got} flows, expected {expected}");
            }
        }
        // Ours: a fresh bridge attached to port25d, until it is confirmed in sync.
        let br = Bridge::new()?;
        let dpid = br.dpid_hex();
        let t = Instant::now();
        br.attach(d.openflow)?;
        let s = wait_until(Duration::from_secs(600), Duration::from_millis(5), || {
            let s = entry(&d, &dpid)?;
            (s["in_sync"] == true && s["policy_version"].as_u64()? >= want).then_some(s)
        })
        .with_context(|| format!("bridge {} not in sync within 600 s", br.name))?;
        ours.push(t.elapsed().as_secs_f64());
        last_round = s["last_round"].clone();
        let got = br.flow_count()?;
        if got != expected {
            bail!("port25d left {got} flows on {}, expected {expected}", br.name);
        }
        if r + 1 == runs {
            keep = Some(br);
        }
    }
    let (rss_peak, _) = rss_kib(d.pid());
    // Reconnect of an in-sync switch; reference: dump-flows of the same table.
    let br = keep.context("no bridge kept")?;
    let dpid = br.dpid_hex();
    let mut reconnect = Vec::new();
    let mut dump = Vec::new();
    let mut reconnect_round = Value::Null;
    // When port25d first listed the new session (OVS connected, handshake done).
    let mut reconnect_seen = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = Command::new("ovs-ofctl")
            .args(["-O", "OpenFlow13", "dump-flows", &br.name])
            .stdout(std::process::Stdio::null())
            .status()?;
        if !out.success() {
            bail!("dump-flows failed");
        }
        dump.push(t.elapsed().as_secs_f64());
        let old = entry(&d, &dpid).context("bridge not connected")?["session"].clone();
        br.detach()?;
        wait_until(Duration::from_secs(60), Duration::from_millis(5), || entry(&d, &dpid).is_none().then_some(()))
            .context("session did not end after detach")?;
        let t = Instant::now();
        br.attach(d.openflow)?;
        let mut seen: Option<f64> = None;
        let s = wait_until(Duration::from_secs(300), Duration::from_millis(2), || {
            let s = entry(&d, &dpid)?;
            if s["session"] != old && seen.is_none() {
                seen = Some(t.elapsed().as_secs_f64());
            }
            (s["session"] != old && s["in_sync"] == true && s["policy_version"].as_u64()? >= want).then_some(s)
        })
        .context("reconnected bridge not in sync")?;
        reconnect.push(t.elapsed().as_secs_f64());
        reconnect_seen.push(seen.unwrap_or(f64::NAN));
        reconnect_round = s["last_round"].clone();
    }
    let (rss_after, _) = rss_kib(d.pid());
    d.stop();
    Ok(json!({
        "count": n, "flows": expected,
        "ours": ours, "reference": reference, "last_round": last_round,
        "reconnect": reconnect, "reconnect_seen": reconnect_seen, "dump": dump, "reconnect_round": reconnect_round,
        "rss_idle_kib": rss_idle, "rss_peak_kib": rss_peak.max(rss_after),
    }))
}

// ---------------------------------------------------------------------------
// Phase: simulated fleet: convergence, API health during it, grant latency

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[i.min(s.len() - 1)]
}

fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

fn fleet_phase(args: &[String]) -> anyhow::Result<Value> {
    let bin = PathBuf::from(arg(args, "--port25d").context("--port25d")?);
    let work = PathBuf::from(arg(args, "--work").context("--work")?);
    let n = num(args, "--count", 10_000);
    let switches = num(args, "--switches", 1);
    let grants = num(args, "--grants", 100);
    let data = work.join(format!("fleet-{switches}"));
    let _ = std::fs::remove_dir_all(&data);
    preload(&data, n, None)?;
    let d = Port25d::start(&bin, &data, &work.join(format!("port25d-fleet-{switches}.log")))?;
    let want = d.policy_version()?;
    let expected = 2 * n + 7;

    // /healthz every 50 ms from another thread, for the whole phase.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let api = d.api;
    let stop2 = stop.clone();
    let health = std::thread::spawn(move || {
        let mut lat = Vec::new();
        let mut failures = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            match http::call(api, "GET", "/healthz", None) {
                Ok((200, _)) => lat.push(t.elapsed().as_secs_f64()),
                _ => failures += 1,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (lat, failures)
    });

    let t = Instant::now();
    let fleet = fleet::Fleet::start(switches, 0x5100_0000, d.openflow)?;
    // Converged: every switch confirmed the policy (port25d's view) and holds every flow (the switch's view).
    let mut polls = 0;
    let converged =
        wait_until(Duration::from_secs(1200), Duration::from_millis(if switches > 100 { 250 } else { 5 }), || {
            polls += 1;
            let list = d.switches().ok()?;
            let ok = list.iter().filter(|s| s["in_sync"] == true && s["policy_version"].as_u64() >= Some(want)).count();
            (ok == switches).then_some(())
        });
    let converge_secs = t.elapsed().as_secs_f64();
    if converged.is_none() {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        bail!("{switches} simulated switches not all in sync within 1200 s");
    }
    let short: Vec<u64> =
        fleet.switches.iter().filter(|s| s.flow_count() != expected).map(|s| s.dpid()).take(5).collect();
    if !short.is_empty() {
        bail!("switches {short:x?} do not hold {expected} flows");
    }
    let rss_converged = rss_kib(d.pid()).0;

    // Grants, one at a time: POST, then wait until every switch confirmed
    // the exemption's add with a barrier reply.
    let probe_value = 0x2525_0200_0000_0000u64;
    let probe_mask = 0xffff_ff00_0000_0000u64;
    let mut lat = Vec::new();
    let mut ack = Vec::new();
    let mut conn = fleet.rt.block_on(http::Conn::connect(d.api))?;
    for g in 0..grants {
        fleet.fabric.probe.arm(probe_value, probe_mask);
        let body = format!("{{\"subscriber\":\"{}\",\"note\":\"bench grant\"}}", subscriber(900_000 + g));
        let t0 = Instant::now();
        let (status, resp) = fleet.rt.block_on(conn.request("POST", "/v1/exemptions", &body))?;
        ack.push(t0.elapsed().as_secs_f64());
        if status != 201 {
            bail!("grant answered {status}: {}", String::from_utf8_lossy(&resp));
        }
        let hits = wait_until(Duration::from_secs(30), Duration::from_micros(100), || {
            let h = fleet.fabric.probe.hits();
            (h.len() >= switches).then_some(h)
        })
        .context("grant not confirmed by every switch within 30 s")?;
        let last = hits.iter().map(|h| h.at.into_std()).max().context("no hits")?;
        lat.push(last.saturating_duration_since(t0).as_secs_f64());
        std::thread::sleep(Duration::from_millis(5));
    }
    fleet.fabric.probe.disarm();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (health_lat, health_fail) = health.join().map_err(|_| anyhow::anyhow!("health thread panicked"))?;
    let (blobs, blob_bytes, table_bytes) = fleet.flow_state_bytes();
    let c = fleet.switches[0].counters();
    let port25d_rss = rss_kib(d.pid());
    let sim_rss = rss_kib(std::process::id());
    fleet.shutdown();
    d.stop();
    Ok(json!({
        "switches": switches, "count": n, "converge_secs": converge_secs, "polls": polls,
        "grant_p50": percentile(&lat, 50.0), "grant_p99": percentile(&lat, 99.0), "grant_max": percentile(&lat, 100.0),
        "ack_p50": percentile(&ack, 50.0), "ack_p99": percentile(&ack, 99.0), "grants": grants,
        "health_max": percentile(&health_lat, 100.0), "health_p99": percentile(&health_lat, 99.0),
        "health_n": health_lat.len(), "health_failures": health_fail,
        "port25d_hwm_kib": port25d_rss.0, "port25d_rss_converged_kib": rss_converged,
        "sim_hwm_kib": sim_rss.0, "sim_rss_kib": sim_rss.1,
        "sim_blobs": blobs, "sim_blob_bytes": blob_bytes, "sim_table_bytes": table_bytes,
        "sw0_flow_mods": c.flow_mod_total(), "sw0_bundle_adds": c.bundle_adds, "sw0_barriers": c.barriers(),
    }))
}

// ---------------------------------------------------------------------------
// Phase: API throughput

fn api_phase(args: &[String]) -> anyhow::Result<Value> {
    let bin = PathBuf::from(arg(args, "--port25d").context("--port25d")?);
    let work = PathBuf::from(arg(args, "--work").context("--work")?);
    let clients = num(args, "--clients", 64);
    let secs = num(args, "--secs", 10) as u64;
    let data = work.join("api");
    let _ = std::fs::remove_dir_all(&data);
    preload(&data, 0, None)?;
    let d = Port25d::start(&bin, &data, &work.join("port25d-api.log"))?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let api = d.api;
    let (created, errors, elapsed, lat) = rt.block_on(async move {
        let start = Instant::now();
        let end = start + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for c in 0..clients {
            tasks.push(tokio::spawn(async move {
                let mut conn = http::Conn::connect(api).await?;
                let (mut ok, mut err, mut lat) = (0usize, 0usize, Vec::new());
                let mut k = 0;
                while Instant::now() < end {
                    let i = 1 + c + clients * k;
                    k += 1;
                    let body = format!("{{\"subscriber\":\"{}\"}}", subscriber(i));
                    let t = Instant::now();
                    match conn.request("POST", "/v1/exemptions", &body).await {
                        Ok((201, _)) => {
                            ok += 1;
                            lat.push(t.elapsed().as_secs_f64());
                        }
                        Ok(_) => err += 1,
                        Err(_) => {
                            err += 1;
                            conn = http::Conn::connect(api).await?;
                        }
                    }
                }
                anyhow::Ok((ok, err, lat))
            }));
        }
        let (mut ok, mut err, mut lat) = (0, 0, Vec::new());
        for t in tasks {
            if let Ok(Ok((o, e, l))) = t.await {
                ok += o;
                err += e;
                lat.extend(l);
            }
        }
        (ok, err, start.elapsed().as_secs_f64(), lat)
    });
    let stored = d.health()?["exemptions"].as_u64().unwrap_or(0);
    d.stop();
    // Bulk: `PUT /v1/exemptions` states the whole list (a sync), so on a
    // fresh store each step lists `step` more records than the last and
    // creates exactly those, in one request.
    let data = work.join("api-bulk");
    let _ = std::fs::remove_dir_all(&data);
    preload(&data, 0, None)?;
    let d = Port25d::start(&bin, &data, &work.join("port25d-api-bulk.log"))?;
    let probe = http::call(d.api, "PUT", "/v1/exemptions", Some("{\"exemptions\":[]}"))?;
    let bulk_route = !matches!(probe.0, 404 | 405);
    let step = num(args, "--bulk", 20_000);
    let mut bulk = Vec::new();
    if bulk_route {
        for k in 1..=3usize {
            let mut body = String::with_capacity(k * step * 36 + 32);
            body.push_str("{\"exemptions\":[");
            for i in 1..=k * step {
                if i > 1 {
                    body.push(',');
                }
                body.push_str(&format!("{{\"subscriber\":\"{}\"}}", bulk_subscriber(i)));
            }
            body.push_str("]}");
            let t = Instant::now();
            let (status, v) = http::call(d.api, "PUT", "/v1/exemptions", Some(&body))?;
            let secs = t.elapsed().as_secs_f64();
            if !(200..300).contains(&status) {
                bail!("bulk sync answered {status}: {v}");
            }
            let have = d.health()?["exemptions"].as_u64().unwrap_or(0);
            if have != (k * step) as u64 {
                bail!("after a sync of {} records the store holds {have}", k * step);
            }
            bulk.push(step as f64 / secs);
        }
    }
    d.stop();
    Ok(json!({
        "clients": clients, "created": created, "errors": errors, "secs": elapsed,
        "per_sec": created as f64 / elapsed, "lat_p50": percentile(&lat, 50.0), "lat_p99": percentile(&lat, 99.0),
        "stored": stored, "bulk_route": bulk_route, "bulk_probe_status": probe.0, "bulk_step": step,
        "bulk_per_sec": bulk,
    }))
}

// ---------------------------------------------------------------------------
// The whole run

struct Table {
    rows: Vec<[String; 6]>,
    notes: Vec<String>,
}

impl Table {
    fn row(
        &mut self,
        figure: &str,
        ours: String,
        reference: String,
        ratio: Option<f64>,
        target: &str,
        met: Option<bool>,
    ) {
        self.rows.push([
            figure.into(),
            ours,
            reference,
            ratio.map_or("–".into(), |r| format!("{r:.2}")),
            target.into(),
            match met {
                Some(true) => "yes".into(),
                Some(false) => "**no**".into(),
                None => "–".into(),
            },
        ]);
    }

    fn print(&self) -> String {
        let mut s = String::from("| figure | ours | reference | ratio | target | met? |\n|---|---|---|---|---|---|\n");
        for r in &self.rows {
            s.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        for n in &self.notes {
            s.push_str(&format!("\n- {n}"));
        }
        s.push('\n');
        s
    }
}

fn child(work: &Path, args: &[&str]) -> anyhow::Result<Value> {
    let me = std::env::current_exe()?;
    eprintln!("p25bench: {}", args.join(" "));
    let out = Command::new(me).args(args).arg("--work").arg(work).output()?;
    if !out.status.success() {
        bail!("phase {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().context("phase printed nothing")?;
    let v: Value = serde_json::from_str(line)?;
    eprintln!("p25bench:   {v}");
    Ok(v)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn med(v: &Value) -> f64 {
    let xs: Vec<f64> = v.as_array().map(|a| a.iter().map(f).collect()).unwrap_or_default();
    median(&xs)
}

fn ms(s: f64) -> String {
    if s < 0.01 {
        format!("{:.2} ms", s * 1000.0)
    } else if s < 10.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.1} s")
    }
}

fn mib(kib: f64) -> String {
    format!("{:.0} MiB", kib / 1024.0)
}

fn all(args: &[String]) -> anyhow::Result<()> {
    let bin = arg(args, "--port25d").context("--port25d BIN")?;
    let work = PathBuf::from(arg(args, "--work").unwrap_or_else(|| proc::run_dir().to_string_lossy().into_owned()));
    std::fs::create_dir_all(&work)?;
    let figures = arg(args, "--figures").unwrap_or_else(|| "abcdef".into());
    let runs = arg(args, "--runs").unwrap_or_else(|| "3".into());
    let sizes: Vec<usize> = arg(args, "--sizes")
        .unwrap_or_else(|| "1000,10000,100000".into())
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let fleet_sizes: Vec<usize> = arg(args, "--fleets")
        .unwrap_or_else(|| "1,100,1000".into())
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let mut t = Table { rows: Vec::new(), notes: Vec::new() };
    let has = |c: char| figures.contains(c);

    // (a), (b), (f): real OVS bridges.
    let mut growth: Vec<(usize, f64, f64, f64)> = Vec::new();
    if has('a') || has('b') || has('f') {
        for &n in &sizes {
            let v = child(&work, &["ovs", "--port25d", &bin, "--count", &n.to_string(), "--runs", &runs])?;
            let (o, r) = (med(&v["ours"]), med(&v["reference"]));
            growth.push((n, o, f(&v["rss_peak_kib"]), r));
            let flows = v["flows"].as_u64().unwrap_or(0);
            if has('a') && n == *sizes.iter().max().unwrap_or(&n) {
                t.row(
                    &format!("(a) fresh OVS bridge → {n} exemptions ({flows} flows) confirmed"),
                    ms(o),
                    format!("{} (ovs-ofctl --bundle add-flows)", ms(r)),
                    Some(o / r),
                    "ratio ≤ 1.3",
                    Some(o / r <= 1.3),
                );
                t.notes.push(format!(
                    "(a) port25d's own round (read-back to barrier reply) at {n}: {} ms; the rest is OVS connecting and the poll of /v1/switches (5 ms).",
                    v["last_round"]["elapsed_ms"]
                ));
            }
            if has('b') && n == *sizes.iter().max().unwrap_or(&n) {
                let (rc, d) = (med(&v["reconnect"]), med(&v["dump"]));
                let rr = &v["reconnect_round"];
                t.row(
                    &format!("(b) reconnect of an in-sync bridge, {flows} flows"),
                    format!("{} ({} adds, {} deletes)", ms(rc), rr["added"], rr["deleted"]),
                    format!("{} (ovs-ofctl dump-flows)", ms(d)),
                    Some(rc / d),
                    "ratio ≤ 1.3, zero flow-mods",
                    Some(rc / d <= 1.3 && rr["added"] == 0 && rr["deleted"] == 0),
                );
                t.notes.push(format!(
                    "(b) of the reconnect, OVS connecting and the handshake took {} (median, until port25d listed the new session); port25d's read-back round itself {} ms.",
                    ms(med(&v["reconnect_seen"])),
                    rr["elapsed_ms"]
                ));
            }
        }
    }

    // (c), (e): simulated fleets.
    if has('c') || has('e') {
        for &sw in &fleet_sizes {
            let grants = if sw >= 1000 { 100 } else { 200 };
            let v = child(
                &work,
                &[
                    "fleet",
                    "--port25d",
                    &bin,
                    "--count",
                    "10000",
                    "--switches",
                    &sw.to_string(),
                    "--grants",
                    &grants.to_string(),
                ],
            )?;
            if has('c') {
                let target = match sw {
                    100 => Some(0.010),
                    1000 => Some(0.050),
                    _ => None,
                };
                let p99 = f(&v["grant_p99"]);
                t.row(
                    &format!("(c) grant → barrier-confirmed on all {sw} switch(es), p50 / p99"),
                    format!("{} / {}", ms(f(&v["grant_p50"])), ms(p99)),
                    format!("API ack alone {} / {}", ms(f(&v["ack_p50"])), ms(f(&v["ack_p99"]))),
                    None,
                    &target.map_or("–".into(), |x| format!("p99 ≤ {}", ms(x))),
                    target.map(|x| p99 <= x),
                );
            }
            if has('e') && sw >= 1000 {
                let hwm = f(&v["port25d_hwm_kib"]);
                let health = f(&v["health_max"]);
                t.row(
                    &format!("(e) {sw} simulated switches × 10000 exemptions: all converge"),
                    ms(f(&v["converge_secs"])),
                    "–".into(),
                    None,
                    "all converge",
                    Some(true),
                );
                t.row(
                    "(e) /healthz max latency during (e)",
                    format!("{} ({} probes)", ms(health), v["health_n"]),
                    "–".into(),
                    None,
                    "< 100 ms",
                    Some(health < 0.1 && v["health_failures"] == 0),
                );
                t.row(
                    "(e) port25d RSS peak (VmHWM)",
                    mib(hwm),
                    "–".into(),
                    None,
                    "≤ 300 MiB",
                    Some(hwm <= 300.0 * 1024.0),
                );
                t.notes.push(format!(
                    "(e) simulator process (separate from port25d): VmHWM {}, {} shared flow blobs ({} KiB), tables {} MiB for {sw} switches.",
                    mib(f(&v["sim_hwm_kib"])),
                    v["sim_blobs"],
                    v["sim_blob_bytes"].as_u64().unwrap_or(0) / 1024,
                    v["sim_table_bytes"].as_u64().unwrap_or(0) / (1 << 20)
                ));
            }
        }
        t.notes.push(
            "(c) latency is from sending the POST to the last switch queueing its barrier reply for the barrier after the \
             exemption's flow-mods (measured in the simulator, in-process); port25d reading that reply adds microseconds."
                .into(),
        );
    }

    // (d): API.
    if has('d') {
        let v = child(&work, &["api", "--port25d", &bin, "--clients", "64", "--secs", "10"])?;
        let r = f(&v["per_sec"]);
        t.row(
            "(d) durable creates/s, 64 concurrent clients",
            format!("{r:.0}/s (p99 {})", ms(f(&v["lat_p99"]))),
            "–".into(),
            None,
            "≥ 2000/s",
            Some(r >= 2000.0),
        );
        if v["bulk_route"] == true {
            let b = med(&v["bulk_per_sec"]);
            t.row(
                &format!("(d) bulk creates/s (PUT /v1/exemptions, {} new records per request)", v["bulk_step"]),
                format!("{b:.0}/s"),
                "–".into(),
                None,
                "≥ 20000/s",
                Some(b >= 20000.0),
            );
        } else {
            t.row("(d) bulk creates/s", "n/a: no bulk route".into(), "–".into(), None, "≥ 20000/s", None);
        }
    }

    // (f): growth.
    if has('f') && growth.len() >= 2 {
        for w in growth.windows(2) {
            let ((n0, t0, r0, ref0), (n1, t1, r1, ref1)) = (w[0], w[1]);
            let x = n1 as f64 / n0 as f64;
            t.row(
                &format!("(f) growth {n0} → {n1} exemptions: convergence (RSS)"),
                format!("{} → {}: ×{:.1} ({} → {})", ms(t0), ms(t1), t1 / t0, mib(r0), mib(r1)),
                format!("{} → {}: ×{:.1}", ms(ref0), ms(ref1), ref1 / ref0),
                Some((t1 / t0) / x),
                &format!("time ×≤{x:.0} (linear)"),
                Some(t1 / t0 <= x * 1.1),
            );
        }
    }
    let text = t.print();
    std::fs::write(work.join("table.md"), &text)?;
    println!("{text}");
    Ok(())
}
