//! `salespulse run` on its embedded demo broker (no Kafka needed), for the
//! HTTP tests (`tests/http.rs`, `tests/page.rs`): killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::kafka::{free_port, BIN};

pub struct Demo {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the demo engine on a free loopback port with `http` added to its
/// `[http]` section and `demo` as its `[demo]` section; logs to
/// `dir/demo.log`.
pub fn start(dir: &Path, http: &str, demo: &str) -> Demo {
    let port = free_port();
    let config = dir.join("demo.toml");
    std::fs::write(&config, format!("[http]\nlisten = \"127.0.0.1:{port}\"\n{http}\n[demo]\n{demo}\n[log]\nlevel = \"info,rdkafka=warn\"\n")).expect("config");
    let log = dir.join("demo.log");
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn");
    Demo { child, port, log }
}
