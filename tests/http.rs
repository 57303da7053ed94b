//! The HTTP endpoints of `salespulse run` (on its embedded demo broker: no
//! Kafka needed): gzip, the single-flight scrape cache, TLS and basic auth
//! from an exporter-toolkit web configuration file, open probes. Requests go
//! through `curl` (a real client, with its own TLS and gzip).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::demo::Demo;
use common::parse_exposition;

fn demo(dir: &Path, extra: &str) -> Demo {
    common::demo::start(dir, extra, "history_days = 2\nevents_per_second = 50")
}

/// `curl` with `args`; returns (status, headers, body).
fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
    let out = Command::new("curl").args(["-sS", "-o", "-", "-D", "/dev/stderr", "--max-time", "30"]).args(args).output().expect("curl");
    let headers = String::from_utf8_lossy(&out.stderr).into_owned();
    let status = headers.lines().filter(|l| l.starts_with("HTTP/")).last().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, headers, out.stdout)
}

fn wait_serving(d: &Demo, url: &str, extra: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut args = extra.to_vec();
        args.push(url);
        let (status, _, body) = curl(&args);
        if status == 200 && String::from_utf8_lossy(&body).contains("sales_events_total{") {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never served KPIs: {}", std::fs::read_to_string(&d.log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn render_count(body: &[u8]) -> f64 {
    parse_exposition(&String::from_utf8_lossy(body)).get("salespulse_render_duration_seconds_count{}").copied().unwrap_or(-1.0)
}

#[test]
fn gzip_when_asked_and_one_render_for_concurrent_scrapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = demo(dir.path(), "scrape_cache = \"30s\"");
    let url = format!("http://127.0.0.1:{}/metrics", d.port);
    wait_serving(&d, &url, &[]);
    // Within the cache age, plain and gzip are the same render.
    let (s1, h1, plain) = curl(&[&url]);
    let (s2, h2, zipped) = curl(&["-H", "Accept-Encoding: gzip", &url]);
    assert_eq!((s1, s2), (200, 200));
    assert!(!h1.to_ascii_lowercase().contains("content-encoding"), "{h1}");
    assert!(h2.to_ascii_lowercase().contains("content-encoding: gzip"), "{h2}");
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(zipped.as_slice()), &mut unzipped).expect("valid gzip");
    assert_eq!(unzipped, plain, "gzip body is the same exposition");
    assert!(zipped.len() * 4 < plain.len(), "compressed {} of {} bytes", zipped.len(), plain.len());
    // q=0 refuses gzip.
    let (_, h3, _) = curl(&["-H", "Accept-Encoding: gzip;q=0", &url]);
    assert!(!h3.to_ascii_lowercase().contains("content-encoding"), "{h3}");
    // 50 concurrent scrapes: every one complete and the same render (its
    // self-metrics, the render count among them, are byte for byte the same).
    let handles: Vec<_> = (0..50).map(|_| { let url = url.clone(); std::thread::spawn(move || curl(&[&url])) }).collect();
    for h in handles {
        let (status, _, body) = h.join().expect("thread");
        assert_eq!(status, 200);
        assert_eq!(body, plain, "a concurrent scrape got another render or a truncated body");
    }
    assert!(render_count(&plain) >= 1.0);
}

#[test]
fn cache_expires_and_renders_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = demo(dir.path(), "scrape_cache = \"200ms\"");
    let url = format!("http://127.0.0.1:{}/metrics", d.port);
    wait_serving(&d, &url, &[]);
    let (_, _, a) = curl(&[&url]);
    std::thread::sleep(Duration::from_millis(400));
    let (_, _, b) = curl(&[&url]);
    assert!(render_count(&b) > render_count(&a), "a scrape after the cache age renders again");
}

/// A self-signed certificate for 127.0.0.1 and localhost (openssl CLI).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success(), "openssl req failed");
    (cert, key)
}

#[test]
fn tls_and_basic_auth_from_a_web_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, _) = self_signed(dir.path());
    let hash = bcrypt::hash("scrape-secret", 6).expect("bcrypt");
    // Relative paths in the web config file are relative to the file.
    std::fs::write(
        dir.path().join("web.yml"),
        format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: {hash}\n"),
    )
    .expect("web config");
    let web = dir.path().join("web.yml");
    let d = demo(dir.path(), &format!("web_config_file = {:?}", web.display().to_string()));
    let base = format!("https://127.0.0.1:{}", d.port);
    let ca = cert.display().to_string();
    let metrics = format!("{base}/metrics");
    wait_serving(&d, &metrics, &["--cacert", &ca, "-u", "prometheus:scrape-secret"]);
    // without or with wrong credentials: 401 with a challenge, no KPI
    for creds in [None, Some("prometheus:wrong"), Some("someone:scrape-secret")] {
        let mut args = vec!["--cacert", ca.as_str()];
        if let Some(c) = creds {
            args.extend(["-u", c]);
        }
        args.push(&metrics);
        let (status, headers, body) = curl(&args);
        assert_eq!(status, 401, "{creds:?}");
        assert!(headers.to_ascii_lowercase().contains("www-authenticate: basic"), "{headers}");
        assert!(!String::from_utf8_lossy(&body).contains("sales_"), "{creds:?}");
        let status_url = format!("{base}/api/v1/status");
        let mut args2 = vec!["--cacert", ca.as_str()];
        if let Some(c) = creds {
            args2.extend(["-u", c]);
        }
        args2.push(&status_url);
        assert_eq!(curl(&args2).0, 401, "/api/v1/status is protected too");
    }
    // the probes stay open
    assert_eq!(curl(&["--cacert", &ca, &format!("{base}/healthz")]).0, 200);
    assert!(matches!(curl(&["--cacert", &ca, &format!("{base}/readyz")]).0, 200 | 503));
    // plain HTTP on the TLS port is not served
    let (status, _, _) = curl(&[&format!("http://127.0.0.1:{}/metrics", d.port)]);
    assert_ne!(status, 200);
}

#[test]
fn a_bad_web_config_stops_the_start_with_its_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("web.yml"), "basic_auth_users:\n  prometheus: not-a-hash\n").expect("web config");
    let mut d = demo(dir.path(), &format!("web_config_file = {:?}", dir.path().join("web.yml").display().to_string()));
    let status = d.child.wait().expect("wait");
    assert!(!status.success());
    let log = std::fs::read_to_string(&d.log).unwrap_or_default();
    assert!(log.contains("not a bcrypt hash"), "{log}");
}
