//! A real trace backend for the local mesh (`up --tracing[=PORT]`): the Zipkin server (its exec
//! jar, run with the machine's Java), in memory, on loopback, with its own web UI. Every
//! sidecar's and the gateway's tracer posts spans to it (`meshtally_envoy::tracing`); `deployer
//! trace` and the dashboard read them back through its API. The supervisor runs it like the
//! other processes; tracing is best effort, so the mesh serves whether it runs or not.

use std::ffi::OsString;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use meshtally_mesh::model::Sampling;

/// The process's name under the supervisor.
pub const ZIPKIN: &str = "zipkin";

/// The jar, the Java that runs it, its port and the share of requests traced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalTracing {
    pub jar: PathBuf,
    pub java: PathBuf,
    pub port: u16,
    pub sampling: Sampling,
}

impl LocalTracing {
    /// The server's command line: a small heap (the spans of a demo fit), bound to loopback
    /// only (Armeria's port settings), no self-tracing.
    pub fn args(&self) -> Vec<OsString> {
        vec![
            "-Xms32m".into(),
            "-Xmx256m".into(),
            "-XX:+UseSerialGC".into(),
            "-XX:TieredStopAtLevel=1".into(),
            "-jar".into(),
            self.jar.clone().into_os_string(),
            format!("--armeria.ports[0].port={}", self.port).into(),
            "--armeria.ports[0].address=127.0.0.1".into(),
            "--armeria.ports[0].protocols[0]=http".into(),
            "--logging.level.root=WARN".into(),
        ]
    }

    /// The environment it runs with: in-memory storage, no spans about itself.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("STORAGE_TYPE".to_owned(), "mem".to_owned()),
            ("SELF_TRACING_ENABLED".to_owned(), "false".to_owned()),
        ]
    }

    /// Its API's and UI's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The web UI.
    pub fn ui(&self) -> String {
        format!("{}/zipkin/", self.url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_binds_loopback_only() {
        let t = LocalTracing {
            jar: "/j.jar".into(),
            java: "/usr/bin/java".into(),
            port: 19411,
            sampling: Sampling::ALL,
        };
        let args: Vec<String> = t
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"--armeria.ports[0].address=127.0.0.1".to_owned()));
        assert!(args.contains(&"--armeria.ports[0].port=19411".to_owned()));
        assert_eq!(t.ui(), "http://127.0.0.1:19411/zipkin/");
    }
}
