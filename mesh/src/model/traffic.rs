//! Per-service traffic rules, as Istio's traffic tasks teach them: versions with
//! weights (a canary), header matches (A/B), a timeout, retries, fault injection and a circuit
//! breaker. Read from the mesh file's service entries, checked here once, and carried by the
//! model so `render` (Istio objects) and `up` (local Envoy) give them the same meaning.

use serde::{Deserialize, Serialize};

pub use super::duration::Millis;
use super::names;

mod check;
pub use check::{
    check, CircuitBreakerInput, FaultInput, MatchInput, RetriesInput, TrafficError, TrafficInput,
    VersionInput,
};

/// The version a service runs when the mesh file names none: one `v1` taking every request.
pub const DEFAULT_VERSION: &str = "v1";
/// Per request, end to end. Calls can chain (`/call/<peer>`), so this bounds a whole chain hop.
pub const DEFAULT_TIMEOUT: Millis = Millis(10_000);
/// Retries of an in-mesh call when none are given: only failures where the request never reached
/// the app, since retrying a 5xx could repeat a call chain's side effects and double its counts.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 2;
pub const DEFAULT_PER_TRY_TIMEOUT: Millis = Millis(4_000);
pub const DEFAULT_RETRY_ON: &str = "connect-failure,refused-stream,unavailable,cancelled";
/// Istio's outlier-detection defaults, for the fields a `circuit_breaker` leaves out.
const DEFAULT_CONSECUTIVE_5XX: u32 = 5;
const DEFAULT_INTERVAL: Millis = Millis(10_000);
const DEFAULT_BASE_EJECTION: Millis = Millis(30_000);
const DEFAULT_MAX_EJECTION_PERCENT: u32 = 10;
/// The `retry_on` conditions both Envoy and Istio's `retryOn` accept.
const RETRY_CONDITIONS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// A service's checked rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// At least one; names unique.
    pub versions: Vec<Version>,
    /// Tried in order before the weighted split.
    pub matches: Vec<HeaderMatch>,
    pub timeout: Millis,
    pub retries: Option<Retries>,
    pub fault: Option<Fault>,
    pub circuit_breaker: Option<CircuitBreaker>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// A DNS-1123 label: the `version` label, the subset name, part of the Deployment name.
    pub name: String,
    /// Share of requests, in percent. `None` on every version: no split is asked for, and the
    /// load balancer spreads requests over every version's endpoints, as a plain Kubernetes
    /// Service does (then outlier detection can move traffic from one version to another).
    pub weight: Option<u32>,
    /// The demo app of this version answers every request but `/healthz` with this status: a
    /// broken release, for outlier detection to eject.
    pub fail_status: Option<u16>,
    /// With `fail_status`: the percent of requests that fail (default all of them), a release
    /// that is only partly broken, as a canary analysis has to catch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_percent: Option<u32>,
    /// With `fail_status`: only calls from this caller fail (the `x-mesh-source` the callee's
    /// sidecar sets), a release broken for one client alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_from: Option<String>,
    /// Every request but `/healthz` is answered this much later: a slower release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Millis>,
}

impl Version {
    /// The demo app's environment for this version's misbehaviour (`FAIL_STATUS`,
    /// `FAIL_PERCENT`, `FAIL_FROM`, `DELAY_MS`), for `render` and `up` alike.
    pub fn app_env(&self) -> Vec<(&'static str, String)> {
        use meshtally_wire::app::env;
        let mut out = Vec::new();
        if let Some(status) = self.fail_status {
            out.push((env::FAIL_STATUS, status.to_string()));
        }
        if let Some(percent) = self.fail_percent {
            out.push((env::FAIL_PERCENT, percent.to_string()));
        }
        if let Some(from) = &self.fail_from {
            out.push((env::FAIL_FROM, from.clone()));
        }
        if let Some(delay) = self.delay {
            out.push((env::DELAY_MS, delay.0.to_string()));
        }
        out
    }
}

/// Requests whose `header` equals `value` go to `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderMatch {
    /// Lowercase, as HTTP/2 and Envoy spell header names.
    pub header: String,
    pub value: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retries {
    pub attempts: u32,
    /// `None`: each try may take the whole route timeout.
    pub per_try_timeout: Option<Millis>,
    /// Comma-separated Envoy/Istio retry conditions.
    pub retry_on: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub delay: Option<Delay>,
    pub abort: Option<Abort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delay {
    pub fixed: Millis,
    pub percent: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Abort {
    pub status: u16,
    pub percent: u32,
}

/// Istio's connection pool and outlier detection (a DestinationRule's traffic policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitBreaker {
    pub max_connections: Option<u32>,
    pub max_pending: Option<u32>,
    pub max_requests: Option<u32>,
    pub outlier: Option<Outlier>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outlier {
    pub consecutive_5xx: u32,
    pub interval: Millis,
    pub base_ejection: Millis,
    pub max_ejection_percent: u32,
}

impl Default for Traffic {
    fn default() -> Traffic {
        Traffic {
            versions: vec![Version {
                name: DEFAULT_VERSION.to_owned(),
                weight: Some(100),
                fail_status: None,
                fail_percent: None,
                fail_from: None,
                delay: None,
            }],
            matches: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            retries: Some(default_retries()),
            fault: None,
            circuit_breaker: None,
        }
    }
}

fn default_retries() -> Retries {
    Retries {
        attempts: DEFAULT_RETRY_ATTEMPTS,
        per_try_timeout: Some(DEFAULT_PER_TRY_TIMEOUT),
        retry_on: DEFAULT_RETRY_ON.to_owned(),
    }
}

impl Traffic {
    /// Whether requests are split by weight between subsets (else spread over all endpoints).
    pub fn weighted(&self) -> bool {
        self.versions.iter().all(|v| v.weight.is_some())
    }

    pub fn version(&self, name: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.name == name)
    }

    /// New weights for the existing versions (`deployer shift`): every version named once,
    /// integers summing to 100.
    pub fn set_weights(&mut self, weights: &[(String, u32)]) -> Result<(), TrafficError> {
        for (name, _) in weights {
            if self.version(name).is_none() {
                return Err(TrafficError::new(
                    "versions",
                    format!("no version `{name}` (known: {})", self.version_names()),
                ));
            }
        }
        let mut next = self.versions.clone();
        for v in &mut next {
            let given = weights.iter().filter(|(n, _)| *n == v.name).count();
            if given != 1 {
                return Err(TrafficError::new(
                    "versions",
                    format!("give version `{}` exactly one weight", v.name),
                ));
            }
            v.weight = weights.iter().find(|(n, _)| *n == v.name).map(|(_, w)| *w);
        }
        check::check_weights(&next)?;
        self.versions = next;
        Ok(())
    }

    fn version_names(&self) -> String {
        let names: Vec<&str> = self.versions.iter().map(|v| v.name.as_str()).collect();
        names.join(", ")
    }
}

#[cfg(test)]
mod tests;
