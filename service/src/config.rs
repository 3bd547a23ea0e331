//! Reads the service's whole configuration from the environment once, at start,
//! so a bad Deployment fails fast with one clear line instead of at the first request.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use meshtally_wire::app::{self, env};
use reqwest::Url;

/// Port used when `PORT` is unset; matches the demo manifests' Service port.
pub const DEFAULT_PORT: u16 = 8000;
pub const DEFAULT_VERSION: &str = "v1";
pub const DEFAULT_PEER_TIMEOUT_MS: u64 = 2000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    /// `http://host[:port][/prefix]` without a trailing slash, so paths can be appended as-is.
    pub base: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub service: String,
    pub version: String,
    pub bind: IpAddr,
    /// 0 asks the OS for a free port; the bound one is printed on stdout.
    pub port: u16,
    /// In `PEERS` order, which is also the row order of `/mesh`.
    pub peers: Vec<Peer>,
    /// The services outside the mesh, by entry name and declared host (`EXTERNAL`).
    pub external: Vec<Peer>,
    pub peer_timeout: Duration,
    pub mesh_proxy: Option<Url>,
    pub log: bool,
    /// Every request but `/healthz` gets this status (`FAIL_STATUS`): a broken release.
    pub fail_status: Option<u16>,
    /// With `fail_status`: the percent of requests that fail (`FAIL_PERCENT`, 1-100); `None`,
    /// all of them.
    pub fail_percent: Option<u32>,
    /// With `fail_status`: only requests from this caller (`x-mesh-source`) fail (`FAIL_FROM`).
    pub fail_from: Option<String>,
    /// Every request but `/healthz` is answered this much later (`DELAY_MS`): a slower release.
    pub delay: Option<Duration>,
}

impl Config {
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Takes a lookup function rather than reading the process environment so unit
    /// tests can run in parallel without racing on `set_var`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        // Empty counts as unset: Kubernetes renders `value: ""` for templated-out fields.
        let get = |key: &str| get(key).filter(|v| !v.trim().is_empty());

        let service = get(env::SERVICE_NAME)
            .context("SERVICE_NAME is required (the name this service answers as, e.g. service-a)")?
            .trim()
            .to_string();

        let port = match get(env::PORT) {
            None => DEFAULT_PORT,
            Some(raw) => raw
                .trim()
                .parse::<u16>()
                .with_context(|| format!("PORT {raw:?} is not a port number (0-65535)"))?,
        };

        let bind = match get(env::BIND) {
            None => IpAddr::from([0, 0, 0, 0]),
            Some(raw) => raw
                .trim()
                .parse::<IpAddr>()
                .with_context(|| format!("BIND {raw:?} is not an IP address"))?,
        };

        let version =
            get(env::VERSION).map_or_else(|| DEFAULT_VERSION.to_string(), |v| v.trim().to_string());

        let timeout_ms = match get(env::PEER_TIMEOUT_MS) {
            None => DEFAULT_PEER_TIMEOUT_MS,
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => ms,
                _ => bail!("PEER_TIMEOUT_MS {raw:?} must be a positive number of milliseconds"),
            },
        };

        let peers = match get(env::PEERS) {
            None => Vec::new(),
            Some(raw) => parse_peers(&raw).context("invalid PEERS")?,
        };

        let external = match get(env::EXTERNAL) {
            None => Vec::new(),
            Some(raw) => parse_peers(&raw).context("invalid EXTERNAL")?,
        };

        let mesh_proxy = match get(env::MESH_PROXY) {
            None => None,
            Some(raw) => Some(
                parse_http_url(raw.trim())
                    .with_context(|| format!("invalid MESH_PROXY {:?}", raw.trim()))?,
            ),
        };

        let fail_status = match get(env::FAIL_STATUS) {
            None => None,
            Some(raw) => match raw.trim().parse::<u16>() {
                Ok(code) if (400..=599).contains(&code) => Some(code),
                _ => bail!("FAIL_STATUS {raw:?} must be an error status (400-599)"),
            },
        };

        let fail_percent = match get(env::FAIL_PERCENT) {
            None => None,
            Some(raw) => match raw.trim().parse::<u32>() {
                Ok(p) if (1..=100).contains(&p) => Some(p),
                _ => bail!("FAIL_PERCENT {raw:?} must be a percent from 1 to 100"),
            },
        };
        let fail_from = get(env::FAIL_FROM).map(|v| v.trim().to_string());
        if fail_status.is_none() && (fail_percent.is_some() || fail_from.is_some()) {
            bail!(
                "FAIL_PERCENT and FAIL_FROM need FAIL_STATUS (the status the failing requests get)"
            );
        }
        let delay = match get(env::DELAY_MS) {
            None => None,
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(ms) if ms <= 60_000 => Some(Duration::from_millis(ms)),
                _ => bail!("DELAY_MS {raw:?} must be a number of milliseconds up to 60000"),
            },
        };

        let log = matches!(
            get(env::LOG).as_deref().map(str::trim),
            Some("1" | "true" | "yes" | "on")
        );

        Ok(Config {
            service,
            version,
            bind,
            port,
            peers,
            external,
            peer_timeout: Duration::from_millis(timeout_ms),
            mesh_proxy,
            log,
            fail_status,
            fail_percent,
            fail_from,
            delay,
        })
    }

    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == name)
    }

    pub fn external(&self, name: &str) -> Option<&Peer> {
        self.external.iter().find(|p| p.name == name)
    }
}

/// Parses `PEERS` (`name=url,name=url`, see `meshtally_wire::app`) and checks each url: plain
/// http, a host, no query or fragment.
pub fn parse_peers(raw: &str) -> Result<Vec<Peer>> {
    let mut peers = Vec::new();
    for peer in app::parse_peers(raw)? {
        let entry = peer.entry;
        let url = parse_http_url(peer.url).with_context(|| format!("entry {entry:?}"))?;
        if url.query().is_some() || url.fragment().is_some() {
            bail!("entry {entry:?}: peer URL must not carry a query or fragment");
        }
        peers.push(Peer {
            name: peer.name.to_string(),
            base: url.as_str().trim_end_matches('/').to_string(),
        });
    }
    Ok(peers)
}

/// Only plain http: the mesh's sidecars do TLS, and the binary carries no TLS stack.
fn parse_http_url(raw: &str) -> Result<Url> {
    let url = Url::parse(raw).with_context(|| format!("{raw:?} is not a URL"))?;
    if url.scheme() != "http" {
        bail!("{raw:?} must be an http:// URL (no TLS in the app; the sidecar does that)");
    }
    if url.host_str().is_none_or(str::is_empty) {
        bail!("{raw:?} has no host");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_only_the_name_is_set() {
        let c = cfg(&[("SERVICE_NAME", "service-a")]).unwrap();
        assert_eq!(c.service, "service-a");
        assert_eq!(c.version, "v1");
        assert_eq!(c.port, 8000);
        assert_eq!(c.bind.to_string(), "0.0.0.0");
        assert_eq!(c.peer_timeout, Duration::from_millis(2000));
        assert!(c.peers.is_empty());
        assert!(c.mesh_proxy.is_none());
        assert!(!c.log);
    }

    #[test]
    fn missing_or_blank_service_name_is_an_error() {
        for env in [&[][..], &[("SERVICE_NAME", "  ")][..]] {
            let err = format!("{:#}", cfg(env).unwrap_err());
            assert!(err.contains("SERVICE_NAME is required"), "{err}");
        }
    }

    #[test]
    fn peers_parse_in_order_and_lose_trailing_slashes() {
        let peers = parse_peers(
            "service-a=http://service-a.istio-demo.svc.cluster.local:8000, b=http://127.0.0.1:9/,",
        )
        .unwrap();
        assert_eq!(
            peers,
            vec![
                Peer {
                    name: "service-a".into(),
                    base: "http://service-a.istio-demo.svc.cluster.local:8000".into()
                },
                Peer {
                    name: "b".into(),
                    base: "http://127.0.0.1:9".into()
                },
            ]
        );
    }

    #[test]
    fn external_entries_are_read_like_peers() {
        let c = cfg(&[
            ("SERVICE_NAME", "s"),
            (
                "EXTERNAL",
                "payments=http://api.payments.example,w=http://w.example.org:8080",
            ),
        ])
        .unwrap();
        assert_eq!(
            c.external("payments").unwrap().base,
            "http://api.payments.example"
        );
        assert_eq!(c.external("w").unwrap().base, "http://w.example.org:8080");
        assert!(c.peers.is_empty());
        let err = cfg(&[("SERVICE_NAME", "s"), ("EXTERNAL", "p=https://a.example")]).unwrap_err();
        assert!(format!("{err:#}").contains("invalid EXTERNAL"), "{err:#}");
    }

    #[test]
    fn malformed_peer_entries_are_named_in_the_error() {
        for (raw, bad) in [
            ("a=http://x:1,nonsense", "nonsense"),
            ("=http://x:1", "=http://x:1"),
            ("a b=http://x:1", "a b=http://x:1"),
            ("a=https://x:1", "a=https://x:1"),
            ("a=not a url", "a=not a url"),
            ("a=http://x:1,a=http://y:2", "a=http://y:2"),
            ("a=http://x:1/?q=1", "a=http://x:1/?q=1"),
        ] {
            let err = format!(
                "{:#}",
                cfg(&[("SERVICE_NAME", "s"), ("PEERS", raw)]).unwrap_err()
            );
            assert!(err.contains(&format!("{bad:?}")), "{raw}: {err}");
            assert!(!err.contains('\n'), "error must be one line: {err}");
        }
    }

    #[test]
    fn bad_numbers_and_addresses_are_rejected() {
        for (k, v) in [
            ("PORT", "70000"),
            ("PORT", "http"),
            ("BIND", "localhost"),
            ("PEER_TIMEOUT_MS", "0"),
            ("PEER_TIMEOUT_MS", "-5"),
            ("MESH_PROXY", "127.0.0.1:15001"),
        ] {
            let err = format!("{:#}", cfg(&[("SERVICE_NAME", "s"), (k, v)]).unwrap_err());
            assert!(err.contains(k), "{k}={v}: {err}");
        }
    }

    #[test]
    fn explicit_settings_are_honoured() {
        let c = cfg(&[
            ("SERVICE_NAME", "s"),
            ("PORT", "0"),
            ("BIND", "127.0.0.1"),
            ("VERSION", "v2"),
            ("PEER_TIMEOUT_MS", "250"),
            ("MESH_PROXY", "http://127.0.0.1:15001"),
            ("LOG", "1"),
        ])
        .unwrap();
        assert_eq!(c.port, 0);
        assert_eq!(c.bind.to_string(), "127.0.0.1");
        assert_eq!(c.version, "v2");
        assert_eq!(c.fail_status, None);
        assert_eq!(c.peer_timeout, Duration::from_millis(250));
        assert_eq!(c.mesh_proxy.unwrap().as_str(), "http://127.0.0.1:15001/");
        assert!(c.log);
    }

    #[test]
    fn fail_status_is_an_error_status() {
        let with = |v: &str| {
            Config::from_lookup(|k| match k {
                "SERVICE_NAME" => Some("a".into()),
                "FAIL_STATUS" => Some(v.into()),
                _ => None,
            })
        };
        assert_eq!(with("500").unwrap().fail_status, Some(500));
        assert_eq!(with(" ").unwrap().fail_status, None);
        for bad in ["200", "600", "x"] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains("FAIL_STATUS"), "{e}");
        }
    }

    #[test]
    fn a_failing_share_one_failing_caller_and_a_delay() {
        let c = cfg(&[
            ("SERVICE_NAME", "s"),
            ("FAIL_STATUS", "503"),
            ("FAIL_PERCENT", "5"),
            ("FAIL_FROM", "service-b"),
            ("DELAY_MS", "100"),
        ])
        .unwrap();
        assert_eq!(c.fail_percent, Some(5));
        assert_eq!(c.fail_from.as_deref(), Some("service-b"));
        assert_eq!(c.delay, Some(Duration::from_millis(100)));
        for (pairs, says) in [
            (&[("FAIL_PERCENT", "5")][..], "need FAIL_STATUS"),
            (&[("FAIL_FROM", "b")][..], "need FAIL_STATUS"),
            (
                &[("FAIL_STATUS", "500"), ("FAIL_PERCENT", "0")][..],
                "FAIL_PERCENT",
            ),
            (
                &[("FAIL_STATUS", "500"), ("FAIL_PERCENT", "101")][..],
                "FAIL_PERCENT",
            ),
            (&[("DELAY_MS", "soon")][..], "DELAY_MS"),
        ] {
            let mut env = vec![("SERVICE_NAME", "s")];
            env.extend_from_slice(pairs);
            let e = cfg(&env).unwrap_err().to_string();
            assert!(e.contains(says), "{pairs:?}: {e}");
        }
    }
}
