//! Protected HTTP endpoints the way Prometheus exporters do it: one web
//! configuration file in the exporter-toolkit format (`http.web_config_file`)
//! with a TLS certificate and key, and bcrypt-hashed basic-auth users.
//!
//! Owns: reading and validating that file, the rustls server configuration,
//! and checking a request's `Authorization` header.
//! Must not touch: routes (see [`super::http`]), engine state.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt        # PEM; relative paths are relative to this file
//!   key_file: server.key
//!   min_version: TLS12           # or TLS13 (default TLS12)
//! basic_auth_users:
//!   prometheus: $2y$10$...       # bcrypt (htpasswd -nBC 10 "" | tr -d ':\n', or salespulse hash-password)
//! ```
//!
//! Either part may be left out: TLS without users, users without TLS (their
//! passwords then cross the network in clear: the log warns). Fields of the
//! toolkit this build does not implement (client certificates, cipher and
//! curve choices, HTTP/2 and header settings) are refused by name rather
//! than ignored.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("http.web_config_file {path}: {msg}")]
    Invalid { path: String, msg: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    cipher_suites: Option<serde_yaml_ng::Value>,
    prefer_server_cipher_suites: Option<serde_yaml_ng::Value>,
    curve_preferences: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<serde_yaml_ng::Value>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

/// The validated web configuration.
#[derive(Clone)]
pub struct WebConfig {
    /// TLS, when a certificate and key are configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Basic-auth users (empty: no authentication).
    pub auth: Arc<BasicAuth>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig").field("tls", &self.tls.is_some()).field("users", &self.auth.users.len()).finish()
    }
}

impl WebConfig {
    /// No TLS, no authentication (no `http.web_config_file`).
    pub fn open() -> Self {
        WebConfig { tls: None, auth: Arc::new(BasicAuth::default()) }
    }

    /// Reads and validates a web configuration file.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let err = |msg: String| WebConfigError::Invalid { path: path.display().to_string(), msg };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        let raw: RawWebConfig = serde_yaml_ng::from_str(&text).map_err(|e| err(e.to_string()))?;
        if raw.http_server_config.is_some() {
            return Err(err("http_server_config is not supported by salespulse (HTTP/1.1 and HTTP/2 are both served; no extra headers)".into()));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = match raw.tls_server_config {
            None => None,
            Some(t) => Some(Arc::new(tls_config(t, dir).map_err(err)?)),
        };
        let mut users = BTreeMap::new();
        for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
            if user.contains(':') {
                return Err(err(format!("basic_auth_users: user name {user:?} contains ':'")));
            }
            hash.parse::<bcrypt::HashParts>()
                .map_err(|e| err(format!("basic_auth_users.{user}: not a bcrypt hash ({e})")))?;
            users.insert(user, hash);
        }
        Ok(WebConfig { tls, auth: Arc::new(BasicAuth { users, verified: Mutex::default() }) })
    }
}

fn tls_config(t: RawTls, dir: &Path) -> Result<rustls::ServerConfig, String> {
    for (name, set) in [
        ("client_auth_type", t.client_auth_type.as_deref().is_some_and(|v| v != "NoClientCert")),
        ("client_ca_file", t.client_ca_file.is_some()),
        ("cipher_suites", t.cipher_suites.is_some()),
        ("prefer_server_cipher_suites", t.prefer_server_cipher_suites.is_some()),
        ("curve_preferences", t.curve_preferences.is_some()),
    ] {
        if set {
            return Err(format!("tls_server_config.{name} is not supported by salespulse (rustls' defaults apply)"));
        }
    }
    let file = |key: &str, v: Option<String>| -> Result<PathBuf, String> {
        let v = v.ok_or_else(|| format!("tls_server_config.{key} is required with tls_server_config"))?;
        let p = Path::new(&v);
        Ok(if p.is_absolute() { p.to_path_buf() } else { dir.join(p) })
    };
    let cert_path = file("cert_file", t.cert_file)?;
    let key_path = file("key_file", t.key_file)?;
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let certs: Vec<rustls::pki_types::CertificateDer<'static>> = rustls_pemfile_certs(&read(&cert_path)?)
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", cert_path.display()));
    }
    use rustls::pki_types::pem::PemObject;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&read(&key_path)?)
        .map_err(|e| format!("{}: no PEM private key in it ({e})", key_path.display()))?;
    let version = |v: Option<&str>, key: &str| -> Result<Option<&'static rustls::SupportedProtocolVersion>, String> {
        match v {
            None => Ok(None),
            Some("TLS12") => Ok(Some(&rustls::version::TLS12)),
            Some("TLS13") => Ok(Some(&rustls::version::TLS13)),
            Some(other) => Err(format!("tls_server_config.{key}: {other:?}; expected TLS12 or TLS13")),
        }
    };
    let min = version(t.min_version.as_deref(), "min_version")?;
    let max = version(t.max_version.as_deref(), "max_version")?;
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = vec![&rustls::version::TLS13, &rustls::version::TLS12];
    if min.is_some_and(|m| m.version == rustls::ProtocolVersion::TLSv1_3) {
        versions.retain(|v| v.version == rustls::ProtocolVersion::TLSv1_3);
    }
    if max.is_some_and(|m| m.version == rustls::ProtocolVersion::TLSv1_2) {
        versions.retain(|v| v.version == rustls::ProtocolVersion::TLSv1_2);
    }
    if versions.is_empty() {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: certificate and key do not fit together: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

fn rustls_pemfile_certs(pem: &[u8]) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
}

/// Basic-auth users and the credentials already verified (bcrypt is slow
/// on purpose, ~50 ms at cost 10: a scraper sending the same credentials
/// every 15 s must not pay it every time).
#[derive(Default)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// Fingerprints of (user, password, stored hash) that verified.
    verified: Mutex<HashSet<u128>>,
}

/// Most verified credentials remembered at once.
const MAX_VERIFIED: usize = 1024;

impl BasicAuth {
    /// True when users are configured (requests must authenticate).
    pub fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// Number of configured users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Whether an `Authorization` header value grants access.
    pub fn check(&self, header: Option<&str>) -> bool {
        if !self.enabled() {
            return true;
        }
        let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic "))) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
        let Ok(text) = std::str::from_utf8(&decoded) else { return false };
        let Some((user, password)) = text.split_once(':') else { return false };
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let mut key = Vec::with_capacity(user.len() + password.len() + hash.len() + 2);
        key.extend_from_slice(user.as_bytes());
        key.push(0);
        key.extend_from_slice(password.as_bytes());
        key.push(0);
        key.extend_from_slice(hash.as_bytes());
        let fp = xxhash_rust::xxh3::xxh3_128(&key);
        if self.verified.lock().is_ok_and(|v| v.contains(&fp)) {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            if let Ok(mut v) = self.verified.lock() {
                if v.len() >= MAX_VERIFIED {
                    v.clear();
                }
                v.insert(fp);
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pass: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn basic_auth_users_verify_and_reject() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let p = write(dir.path(), "web.yml", &format!("basic_auth_users:\n  prometheus: {hash}\n"));
        let cfg = WebConfig::load(&p).expect("valid");
        assert!(cfg.tls.is_none());
        assert!(cfg.auth.enabled());
        assert!(cfg.auth.check(Some(&header("prometheus", "s3cret"))));
        assert!(cfg.auth.check(Some(&header("prometheus", "s3cret"))), "cached");
        assert!(!cfg.auth.check(Some(&header("prometheus", "wrong"))));
        assert!(!cfg.auth.check(Some(&header("nobody", "s3cret"))));
        assert!(!cfg.auth.check(None));
        assert!(!cfg.auth.check(Some("Bearer x")));
        assert!(!cfg.auth.check(Some("Basic !!!not-base64")));
        assert!(WebConfig::open().auth.check(None), "no users: open");
    }

    #[test]
    fn refuses_what_it_does_not_implement_and_bad_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  client_auth_type: RequireAndVerifyClientCert\n", "client_auth_type"),
            ("tls_server_config:\n  cert_file: a.crt\n", "key_file is required"),
            ("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n", "cannot read"),
            ("basic_auth_users:\n  alice: plaintext\n", "not a bcrypt hash"),
            ("http_server_config:\n  http2: false\n", "http_server_config"),
            ("tls_server_confg:\n  cert_file: a\n", "unknown field"),
        ];
        for (text, want) in cases {
            let p = write(dir.path(), "web.yml", text);
            let e = WebConfig::load(&p).expect_err(text).to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
