//! The demo app's contract with whoever starts it (a Kubernetes Deployment from `render`, or
//! `deployer up`'s supervisor): the environment variables it reads, and the `PEERS` format
//! (`name=url,name=url`) naming whom `/call/<name>` may reach. demo-service parses it; both
//! starters write it.

/// The environment variables demo-service reads.
pub mod env {
    /// The name the service answers as (required).
    pub const SERVICE_NAME: &str = "SERVICE_NAME";
    /// The port it listens on.
    pub const PORT: &str = "PORT";
    /// The address it binds.
    pub const BIND: &str = "BIND";
    /// The version it reports (the `version` label).
    pub const VERSION: &str = "VERSION";
    /// Its peers, in the [`super::format_peers`] format.
    pub const PEERS: &str = "PEERS";
    /// An HTTP proxy every call to a peer goes through (the sidecar's outbound listener).
    pub const MESH_PROXY: &str = "MESH_PROXY";
    /// How long a call to a peer may take.
    pub const PEER_TIMEOUT_MS: &str = "PEER_TIMEOUT_MS";
    /// Log every request when 1/true/yes/on.
    pub const LOG: &str = "LOG";
    /// When set (an error status, 400-599), every request but `/healthz` is answered with it:
    /// a broken release, for outlier detection to eject.
    pub const FAIL_STATUS: &str = "FAIL_STATUS";
    /// With `FAIL_STATUS`: the percent of requests (1-100) that fail, chosen at random per
    /// request; unset, all of them.
    pub const FAIL_PERCENT: &str = "FAIL_PERCENT";
    /// With `FAIL_STATUS`: only requests whose `x-mesh-source` (the caller, as the sidecar
    /// tagged it) is this name fail.
    pub const FAIL_FROM: &str = "FAIL_FROM";
    /// Every request but `/healthz` is answered this many milliseconds later.
    pub const DELAY_MS: &str = "DELAY_MS";
    /// The services outside the mesh it may call (`/call-external/<name>`), in the `PEERS`
    /// format, each by its declared host (see [`super::external_url`]).
    pub const EXTERNAL: &str = "EXTERNAL";
}

/// The URL an app calls an external entry by: its declared host, on the port it speaks plain
/// HTTP to (80, the default, left out, as a user would write it).
pub fn external_url(host: &str, port: u16) -> String {
    if port == 80 {
        format!("http://{host}")
    } else {
        format!("http://{host}:{port}")
    }
}

/// One `PEERS` entry: `name=url`.
pub fn peer_entry(name: &str, url: &str) -> String {
    format!("{name}={url}")
}

/// `PEERS` from entries made by [`peer_entry`]: comma-separated, in the given order (which is
/// also the row order of the app's `/mesh`).
pub fn format_peers<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> String {
    let mut out = String::new();
    for entry in entries {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(entry.as_ref());
    }
    out
}

/// One parsed `PEERS` entry; the url is left for the app to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer<'a> {
    /// The entry as written, for error messages.
    pub entry: &'a str,
    pub name: &'a str,
    pub url: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeersError {
    #[error("entry {0:?} is not name=http://host:port")]
    NoEquals(String),
    #[error("entry {entry:?}: peer name {name:?} must be non-empty [A-Za-z0-9._-]")]
    BadName { entry: String, name: String },
    #[error("entry {entry:?}: peer {name:?} is listed twice")]
    Twice { entry: String, name: String },
}

/// Parses `name=url,name=url`. Empty entries (a trailing comma) are skipped: an easy slip in
/// YAML that carries no ambiguity. Names become a path segment of `/call/<name>`, so they are
/// kept URL- and label-safe.
pub fn parse_peers(raw: &str) -> Result<Vec<Peer<'_>>, PeersError> {
    let mut peers: Vec<Peer<'_>> = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, url) = entry
            .split_once('=')
            .ok_or_else(|| PeersError::NoEquals(entry.to_owned()))?;
        let name = name.trim();
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(PeersError::BadName {
                entry: entry.to_owned(),
                name: name.to_owned(),
            });
        }
        if peers.iter().any(|p| p.name == name) {
            return Err(PeersError::Twice {
                entry: entry.to_owned(),
                name: name.to_owned(),
            });
        }
        peers.push(Peer {
            entry,
            name,
            url: url.trim(),
        });
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let given = [
            (
                "service-b",
                "http://service-b.istio-demo.svc.cluster.local:8001",
            ),
            ("service-c", "http://127.0.0.1:9000/prefix"),
        ];
        let raw = format_peers(given.iter().map(|(n, u)| peer_entry(n, u)));
        assert_eq!(
            raw,
            "service-b=http://service-b.istio-demo.svc.cluster.local:8001,service-c=http://127.0.0.1:9000/prefix"
        );
        let parsed = parse_peers(&raw).unwrap();
        let back: Vec<(&str, &str)> = parsed.iter().map(|p| (p.name, p.url)).collect();
        assert_eq!(back, given);
        assert_eq!(format_peers(Vec::<String>::new()), "");
        assert_eq!(parse_peers("").unwrap(), vec![]);
    }

    #[test]
    fn bad_entries_are_named() {
        assert_eq!(
            parse_peers("a=http://x, ,").unwrap().len(),
            1,
            "empty entries are skipped"
        );
        let cases = [
            ("nourl", "entry \"nourl\" is not name=http://host:port"),
            (
                "=http://x",
                "entry \"=http://x\": peer name \"\" must be non-empty [A-Za-z0-9._-]",
            ),
            (
                "a b=http://x",
                "entry \"a b=http://x\": peer name \"a b\" must be non-empty [A-Za-z0-9._-]",
            ),
            (
                "a=http://x,a=http://y",
                "entry \"a=http://y\": peer \"a\" is listed twice",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_peers(raw).unwrap_err().to_string(), want, "{raw}");
        }
    }
}
