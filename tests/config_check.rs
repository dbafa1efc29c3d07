//! `port25d --check-config` runs every check start-up runs short of
//! opening the store and binding sockets, and stops with the same message
//! (exit code 2) as a start would; and port25d's log carries no ANSI
//! colour when stderr is not a terminal. Through the binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// port25d with `args`, none of the `PORT25_*` or `RUST_LOG` variables
/// of the test's environment, and `env`; its exit code and stderr.
fn port25d(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_port25d"));
    cmd.args(args).env_remove("RUST_LOG").env_remove("NO_COLOR");
    for k in ["PORT25_CONFIG", "PORT25_OPENFLOW_LISTEN", "PORT25_API_LISTEN", "PORT25_DATA_DIR", "PORT25_LOG"] {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run port25d");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A CA, and a certificate and key it signed, as PEM files in `dir`:
/// `(cert, key, ca)`.
fn pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "port25d");
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &Issuer::from_params(&ca, &ca_key)).unwrap();
    (
        write(dir, "port25d.crt", &cert.pem()),
        write(dir, "port25d.key", &key.serialize_pem()),
        write(dir, "ca.crt", &ca_pem),
    )
}

fn tls_config(cert: &Path, key: &Path, ca: &Path) -> String {
    format!(
        "[openflow]\nlisten = \"none\"\ntls_listen = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\ntls_client_ca = {:?}\n",
        cert.display().to_string(),
        key.display().to_string(),
        ca.display().to_string()
    )
}

/// `--check-config` on `text`: refused with exit code 2 and a message
/// containing every one of `wanted`, and a start (which must not get as
/// far as binding or opening the store) refused with the same message.
fn refused_like_a_start(dir: &Path, text: &str, wanted: &[&str]) {
    let file = write(dir, "port25d.toml", text);
    let file = file.to_str().unwrap();
    let (code, check) = port25d(&["--check-config", "--config", file], &[]);
    assert_eq!(code, 2, "--check-config accepted:\n{text}\n{check}");
    for w in wanted {
        assert!(check.contains(w), "{w:?} missing from: {check}");
    }
    let data = dir.join("data");
    let (code, start) =
        port25d(&["--config", file, "--api-listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{start}");
    assert_eq!(start.trim(), check.trim(), "a start and --check-config say different things");
    assert!(!data.exists(), "the start opened the store before refusing the config");
}

#[test]
fn check_config_loads_the_tls_files_as_start_up_does() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = pki(dir.path());
    let good = write(dir.path(), "good.toml", &tls_config(&cert, &key, &ca));
    let (code, err) = port25d(&["--check-config", "--config", good.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");

    let missing = dir.path().join("missing.pem");
    refused_like_a_start(
        dir.path(),
        &tls_config(&missing, &key, &ca),
        &["config key openflow.tls_cert", "missing.pem", "cannot set up TLS"],
    );
    refused_like_a_start(
        dir.path(),
        &tls_config(&cert, &missing, &ca),
        &["config key openflow.tls_key", "missing.pem"],
    );
    refused_like_a_start(
        dir.path(),
        &tls_config(&cert, &key, &missing),
        &["config key openflow.tls_client_ca", "missing.pem"],
    );
    let garbage = write(dir.path(), "garbage.pem", "this is not PEM\n");
    refused_like_a_start(
        dir.path(),
        &tls_config(&garbage, &key, &ca),
        &["config key openflow.tls_cert", "garbage.pem"],
    );
    refused_like_a_start(
        dir.path(),
        &tls_config(&cert, &garbage, &ca),
        &["config key openflow.tls_key", "garbage.pem"],
    );
    refused_like_a_start(dir.path(), &tls_config(&cert, &key, &garbage), &["openflow.tls_client_ca", "garbage.pem"]);
    // A key that is not the certificate's.
    let (_, other_key, _) = pki(&{
        let d = dir.path().join("other");
        std::fs::create_dir(&d).unwrap();
        d
    });
    refused_like_a_start(dir.path(), &tls_config(&cert, &other_key, &ca), &["config key openflow.tls_cert"]);
}

#[test]
fn check_config_refuses_what_start_up_refuses() {
    let dir = tempfile::tempdir().unwrap();
    refused_like_a_start(
        dir.path(),
        "[openflow]\ntls_listen = \"127.0.0.1:0\"\n",
        &["config key openflow.tls_cert", "required with openflow.tls_listen"],
    );
    refused_like_a_start(
        dir.path(),
        "[openflow]\nlisten = \"none\"\n",
        &["config key openflow.listen", "no TLS listener"],
    );
    refused_like_a_start(
        dir.path(),
        "[api]\nmin_prefix_len_v4 = 0\n",
        &["config key api.min_prefix_len_v4", "1 to 32"],
    );
    refused_like_a_start(
        dir.path(),
        "[api]\nmin_prefix_len_v6 = 129\n",
        &["config key api.min_prefix_len_v6", "1 to 128"],
    );
    // The flag form of the same mistake.
    let (code, err) = port25d(&["--check-config", "--openflow-listen", "none"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("openflow.listen"), "{err}");
}

/// Logs written to a file (stderr not a terminal) have no ANSI escapes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_port25d"))
        .args(["--openflow-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("PORT25_CONFIG")
        .env_remove("PORT25_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start port25d");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("port25d ready")) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.iter().any(|l| l.contains("port25d ready")), "port25d did not get ready: {lines:#?}");
    for l in &lines {
        assert!(!l.contains('\u{1b}'), "an ANSI escape in a log written to a pipe: {l:?}");
    }
}
