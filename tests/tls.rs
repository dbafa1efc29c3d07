//! The control channel over mutual TLS, against a real Open vSwitch
//! (a private instance: `set-ssl` is daemon-wide).

mod support;

use std::sync::Arc;
use std::time::Duration;

use port25::daemon::{Settings, TlsListen};
use port25_controller::session::SessionConfig;
use port25_controller::tls::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use support::private_ovs::{write, PrivateOvs};
use support::{wait_for, Daemon};

/// A CA and certificates it signs, written as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca_params: CertificateParams,
    ca_key: KeyPair,
    ca_pem: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pki { dir: tempfile::tempdir().unwrap(), ca_pem: cert.pem(), ca_params: params, ca_key: key }
    }

    /// Sign a leaf; returns (cert path, key path).
    fn leaf(&self, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (
            write(self.dir.path(), &format!("{name}.crt"), &cert.pem()),
            write(self.dir.path(), &format!("{name}.key"), &key.serialize_pem()),
        )
    }

    fn ca(&self) -> std::path::PathBuf {
        write(self.dir.path(), "ca.crt", &self.ca_pem)
    }
}

fn tls_daemon(data: &std::path::Path, pki: &Pki, allow: Option<Vec<u64>>) -> Daemon {
    let (cert, key) = pki.leaf("port25d");
    let session = SessionConfig {
        allow_dpids: allow.map(|v| Arc::new(v.into_iter().map(port25_rules::Dpid).collect())),
        ..SessionConfig::default()
    };
    Daemon::start_settings(Settings {
        openflow_listen: None,
        openflow_tls: Some(TlsListen {
            addr: "127.0.0.1:0".parse().unwrap(),
            files: TlsFiles { cert, key, client_ca: pki.ca() },
        }),
        api_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.to_owned(),
        session,
        max_switches: 64,
    })
}

/// Point a private OVS at the daemon over `ssl:` with the given client
/// certificate, trusting `ca` for the controller's certificate.
fn attach_ssl(
    ovs: &PrivateOvs,
    bridge: &str,
    cert: &std::path::Path,
    key: &std::path::Path,
    ca: &std::path::Path,
    d: &Daemon,
) {
    ovs.vsctl(&["set-ssl", &key.display().to_string(), &cert.display().to_string(), &ca.display().to_string()]);
    ovs.vsctl(&["set-controller", bridge, &format!("ssl:{}", d.bound.openflow_tls.unwrap())]);
    ovs.vsctl(&["set", "controller", bridge, "max_backoff=1000", "connection-mode=out-of-band"]);
}

#[test]
fn ovs_over_mutual_tls_gets_the_policy() {
    let pki = Pki::new("port25 test CA");
    let data = tempfile::tempdir().unwrap();
    let d = tls_daemon(data.path(), &pki, None);
    let ovs = PrivateOvs::start();
    ovs.add_bridge("tlsbr", 0x7001);
    let (cert, key) = pki.leaf("switch-7001");
    attach_ssl(&ovs, "tlsbr", &cert, &key, &pki.ca(), &d);
    let st = d.wait_in_sync("0000000000007001");
    assert_eq!(st["openflow_version"], "1.3");
    assert_eq!(ovs.our_flows("tlsbr").len(), 11, "{}", ovs.log());
    let id = d.grant("198.51.100.7/32");
    d.wait_in_sync("0000000000007001");
    assert_eq!(ovs.our_flows("tlsbr").len(), 13);
    d.revoke(id);
    d.wait_in_sync("0000000000007001");
    assert_eq!(ovs.our_flows("tlsbr").len(), 11);
    d.stop();
}

#[test]
fn a_switch_certificate_from_another_ca_is_refused() {
    let pki = Pki::new("port25 test CA");
    let rogue = Pki::new("rogue CA");
    let data = tempfile::tempdir().unwrap();
    let d = tls_daemon(data.path(), &pki, None);
    let ovs = PrivateOvs::start();
    ovs.add_bridge("roguebr", 0x7002);
    let (cert, key) = rogue.leaf("switch-7002");
    // OVS trusts our CA for the controller, but presents a rogue cert.
    attach_ssl(&ovs, "roguebr", &cert, &key, &pki.ca(), &d);
    std::thread::sleep(Duration::from_secs(3));
    assert!(d.switch("0000000000007002").is_none(), "rogue switch got a session");
    assert!(ovs.our_flows("roguebr").is_empty());
    // The daemon still serves a legitimate switch meanwhile.
    ovs.add_bridge("goodbr", 0x7003);
    let (cert, key) = pki.leaf("switch-7003");
    attach_ssl(&ovs, "goodbr", &cert, &key, &pki.ca(), &d);
    d.wait_in_sync("0000000000007003");
    d.stop();
}

#[test]
fn a_client_without_a_certificate_is_refused() {
    use std::io::{Read, Write};
    let pki = Pki::new("port25 test CA");
    let data = tempfile::tempdir().unwrap();
    let d = tls_daemon(data.path(), &pki, None);
    // A TLS client that trusts the daemon but has no certificate.
    let mut roots = rustls::RootCertStore::empty();
    let ca_der: rustls_pki_types::CertificateDer<'static> =
        rustls_pki_types::pem::PemObject::from_pem_slice(pki.ca_pem.as_bytes()).unwrap();
    roots.add(ca_der).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut sock = std::net::TcpStream::connect(d.bound.openflow_tls.unwrap()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    // An OpenFlow hello; the server must refuse before any OpenFlow flows.
    let hello = [4u8, 0, 0, 8, 0, 0, 0, 1];
    let _ = tls.write_all(&hello);
    let mut buf = [0u8; 64];
    let r = tls.read(&mut buf);
    assert!(matches!(r, Err(_) | Ok(0)), "server answered a client without a certificate: {r:?}");
    // And it keeps serving the API.
    let (st, _) = d.http("GET", "/healthz", None);
    assert_eq!(st, 200);
    let (_, sw) = d.http("GET", "/v1/switches", None);
    assert_eq!(sw["switches"].as_array().unwrap().len(), 0);
    d.stop();
}

#[test]
fn a_switch_not_on_the_allowlist_is_refused_and_shown() {
    let pki = Pki::new("port25 test CA");
    let data = tempfile::tempdir().unwrap();
    let d = tls_daemon(data.path(), &pki, Some(vec![0x7010]));
    let ovs = PrivateOvs::start();
    ovs.add_bridge("allowed", 0x7010);
    ovs.add_bridge("stranger", 0x7011);
    let (cert, key) = pki.leaf("switches");
    attach_ssl(&ovs, "allowed", &cert, &key, &pki.ca(), &d);
    attach_ssl(&ovs, "stranger", &cert, &key, &pki.ca(), &d);
    d.wait_in_sync("0000000000007010");
    let st = wait_for(Duration::from_secs(10), || {
        let s = d.switch("0000000000007011")?;
        (s["state"] == "refused").then_some(s)
    })
    .expect("stranger not shown as refused");
    assert!(st["last_error"].as_str().unwrap().contains("allowlist"), "{st}");
    assert!(ovs.our_flows("stranger").is_empty());
    assert_eq!(ovs.our_flows("allowed").len(), 11);
    d.stop();
}
