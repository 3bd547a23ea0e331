//! The traffic rules as the mesh file spells them, every field optional, and the one check
//! that fills the defaults and turns them into a [`Traffic`], refusing with the field at fault.

use serde::Deserialize;

use super::{
    names, Abort, CircuitBreaker, Delay, Fault, HeaderMatch, Millis, Outlier, Retries, Traffic,
    Version, DEFAULT_BASE_EJECTION, DEFAULT_CONSECUTIVE_5XX, DEFAULT_INTERVAL,
    DEFAULT_MAX_EJECTION_PERCENT, DEFAULT_RETRY_ON, RETRY_CONDITIONS,
};

/// One problem in a service's rules: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct TrafficError {
    pub field: String,
    pub reason: String,
}

impl TrafficError {
    pub(super) fn new(field: &str, reason: impl Into<String>) -> TrafficError {
        TrafficError {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The rules as the mesh file spells them (in a service entry), every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficInput {
    pub versions: Option<Vec<VersionInput>>,
    pub matches: Option<Vec<MatchInput>>,
    pub timeout: Option<Millis>,
    pub retries: Option<RetriesInput>,
    pub fault: Option<FaultInput>,
    pub circuit_breaker: Option<CircuitBreakerInput>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionInput {
    pub name: String,
    #[serde(default)]
    pub weight: Option<u32>,
    #[serde(default)]
    pub fail_status: Option<u16>,
    #[serde(default)]
    pub fail_percent: Option<u32>,
    #[serde(default)]
    pub fail_from: Option<String>,
    #[serde(default)]
    pub delay: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchInput {
    pub header: String,
    pub value: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetriesInput {
    pub attempts: u32,
    #[serde(default)]
    pub per_try_timeout: Option<Millis>,
    #[serde(default)]
    pub retry_on: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultInput {
    #[serde(default)]
    pub delay: Option<DelayInput>,
    #[serde(default)]
    pub abort: Option<AbortInput>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayInput {
    pub fixed: Millis,
    pub percent: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortInput {
    pub status: u16,
    pub percent: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerInput {
    #[serde(default)]
    pub max_connections: Option<u32>,
    #[serde(default)]
    pub max_pending: Option<u32>,
    #[serde(default)]
    pub max_requests: Option<u32>,
    #[serde(default)]
    pub consecutive_5xx: Option<u32>,
    #[serde(default)]
    pub interval: Option<Millis>,
    #[serde(default)]
    pub base_ejection: Option<Millis>,
    #[serde(default)]
    pub max_ejection_percent: Option<u32>,
}

/// Fills defaults and checks the rules; the first problem is returned.
pub fn check(input: TrafficInput) -> Result<Traffic, TrafficError> {
    let defaults = Traffic::default();
    let versions = match input.versions {
        None => defaults.versions,
        Some(list) => versions(list)?,
    };
    let matches = input
        .matches
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, m)| header_match(i, m, &versions))
        .collect::<Result<Vec<_>, _>>()?;
    let timeout = input.timeout.unwrap_or(defaults.timeout);
    if timeout.0 == 0 {
        return Err(TrafficError::new("timeout", "must be more than 0"));
    }
    let retries = match input.retries {
        None => defaults.retries,
        Some(r) if r.attempts == 0 => None,
        Some(r) => Some(retries(r)?),
    };
    let fault = input.fault.map(fault).transpose()?;
    let circuit_breaker = input.circuit_breaker.map(circuit_breaker).transpose()?;
    Ok(Traffic {
        versions,
        matches,
        timeout,
        retries,
        fault,
        circuit_breaker,
    })
}

fn versions(list: Vec<VersionInput>) -> Result<Vec<Version>, TrafficError> {
    if list.is_empty() {
        return Err(TrafficError::new("versions", "list at least one version"));
    }
    let single = list.len() == 1;
    let mut out: Vec<Version> = Vec::with_capacity(list.len());
    for v in list {
        if !names::is_dns1123_label(&v.name) {
            return Err(TrafficError::new(
                "versions",
                format!(
                    "version name `{}` is not a DNS-1123 label (1-63 of a-z, 0-9 and '-')",
                    v.name
                ),
            ));
        }
        if out.iter().any(|seen| seen.name == v.name) {
            return Err(TrafficError::new(
                "versions",
                format!("version `{}` is listed twice", v.name),
            ));
        }
        if let Some(status) = v.fail_status {
            if !(400..=599).contains(&status) {
                return Err(TrafficError::new(
                    "versions.fail_status",
                    format!("{status} is not an error status (400-599)"),
                ));
            }
        }
        if v.fail_status.is_none() && (v.fail_percent.is_some() || v.fail_from.is_some()) {
            return Err(TrafficError::new(
                "versions",
                format!(
                    "version `{}`: fail_percent and fail_from need fail_status (the status the failing calls get)",
                    v.name
                ),
            ));
        }
        if let Some(percent) = v.fail_percent {
            if !(1..=100).contains(&percent) {
                return Err(TrafficError::new(
                    "versions.fail_percent",
                    format!("{percent} is not a percent from 1 to 100"),
                ));
            }
        }
        if let Some(from) = &v.fail_from {
            if !names::is_dns1123_label(from) {
                return Err(TrafficError::new(
                    "versions.fail_from",
                    format!("`{from}` is not a service name (a DNS-1123 label)"),
                ));
            }
        }
        out.push(Version {
            // A lone version takes every request, weight given or not.
            weight: if single {
                Some(v.weight.unwrap_or(100))
            } else {
                v.weight
            },
            name: v.name,
            fail_status: v.fail_status,
            fail_percent: v.fail_percent,
            fail_from: v.fail_from,
            delay: v.delay,
        });
    }
    check_weights(&out)?;
    Ok(out)
}

pub(super) fn check_weights(versions: &[Version]) -> Result<(), TrafficError> {
    let given = versions.iter().filter(|v| v.weight.is_some()).count();
    if given == 0 {
        return Ok(());
    }
    if given != versions.len() {
        return Err(TrafficError::new(
            "versions",
            "give every version a weight, or none (to spread requests over all of them)",
        ));
    }
    let sum: u64 = versions
        .iter()
        .filter_map(|v| v.weight)
        .map(u64::from)
        .sum();
    if sum != 100 {
        return Err(TrafficError::new(
            "versions",
            format!("weights sum to {sum}, not 100"),
        ));
    }
    Ok(())
}

fn header_match(
    i: usize,
    m: MatchInput,
    versions: &[Version],
) -> Result<HeaderMatch, TrafficError> {
    let field = format!("match[{i}]");
    let header = m.header.to_ascii_lowercase();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if header.is_empty() || !header.chars().all(token) {
        return Err(TrafficError::new(
            &field,
            format!("header `{}` is not an HTTP header name", m.header),
        ));
    }
    if !versions.iter().any(|v| v.name == m.version) {
        let known: Vec<&str> = versions.iter().map(|v| v.name.as_str()).collect();
        return Err(TrafficError::new(
            &field,
            format!(
                "version `{}` is not one of the service's versions ({})",
                m.version,
                known.join(", ")
            ),
        ));
    }
    Ok(HeaderMatch {
        header,
        value: m.value,
        version: m.version,
    })
}

fn retries(r: RetriesInput) -> Result<Retries, TrafficError> {
    let retry_on = r.retry_on.unwrap_or_else(|| DEFAULT_RETRY_ON.to_owned());
    for condition in retry_on.split(',') {
        if !RETRY_CONDITIONS.contains(&condition.trim()) {
            return Err(TrafficError::new(
                "retries.retry_on",
                format!(
                    "`{condition}` is not a retry condition ({})",
                    RETRY_CONDITIONS.join(", ")
                ),
            ));
        }
    }
    if r.per_try_timeout == Some(Millis(0)) {
        return Err(TrafficError::new(
            "retries.per_try_timeout",
            "must be more than 0",
        ));
    }
    Ok(Retries {
        attempts: r.attempts,
        per_try_timeout: r.per_try_timeout,
        retry_on: retry_on
            .split(',')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(","),
    })
}

fn percent(field: &str, value: u32) -> Result<u32, TrafficError> {
    if value > 100 {
        return Err(TrafficError::new(
            field,
            format!("percent {value} is over 100"),
        ));
    }
    Ok(value)
}

fn fault(f: FaultInput) -> Result<Fault, TrafficError> {
    if f.delay.is_none() && f.abort.is_none() {
        return Err(TrafficError::new("fault", "give a delay, an abort or both"));
    }
    let delay = match f.delay {
        None => None,
        Some(d) => Some(Delay {
            fixed: d.fixed,
            percent: percent("fault.delay.percent", d.percent)?,
        }),
    };
    let abort = match f.abort {
        None => None,
        Some(a) => {
            if !(200..=599).contains(&a.status) {
                return Err(TrafficError::new(
                    "fault.abort.status",
                    format!("{} is not an HTTP status (200-599)", a.status),
                ));
            }
            Some(Abort {
                status: a.status,
                percent: percent("fault.abort.percent", a.percent)?,
            })
        }
    };
    Ok(Fault { delay, abort })
}

fn circuit_breaker(c: CircuitBreakerInput) -> Result<CircuitBreaker, TrafficError> {
    let at_least_one = |field: &str, v: Option<u32>| match v {
        Some(0) => Err(TrafficError::new(field, "must be at least 1")),
        other => Ok(other),
    };
    let wants_outlier = c.consecutive_5xx.is_some()
        || c.interval.is_some()
        || c.base_ejection.is_some()
        || c.max_ejection_percent.is_some();
    let outlier = if wants_outlier {
        let consecutive_5xx = at_least_one("circuit_breaker.consecutive_5xx", c.consecutive_5xx)?
            .unwrap_or(DEFAULT_CONSECUTIVE_5XX);
        let interval = c.interval.unwrap_or(DEFAULT_INTERVAL);
        let base_ejection = c.base_ejection.unwrap_or(DEFAULT_BASE_EJECTION);
        for (field, d) in [
            ("circuit_breaker.interval", interval),
            ("circuit_breaker.base_ejection", base_ejection),
        ] {
            if d.0 == 0 {
                return Err(TrafficError::new(field, "must be more than 0"));
            }
        }
        Some(Outlier {
            consecutive_5xx,
            interval,
            base_ejection,
            max_ejection_percent: percent(
                "circuit_breaker.max_ejection_percent",
                c.max_ejection_percent
                    .unwrap_or(DEFAULT_MAX_EJECTION_PERCENT),
            )?,
        })
    } else {
        None
    };
    let breaker = CircuitBreaker {
        max_connections: at_least_one("circuit_breaker.max_connections", c.max_connections)?,
        max_pending: at_least_one("circuit_breaker.max_pending", c.max_pending)?,
        max_requests: at_least_one("circuit_breaker.max_requests", c.max_requests)?,
        outlier,
    };
    if breaker
        == (CircuitBreaker {
            max_connections: None,
            max_pending: None,
            max_requests: None,
            outlier: None,
        })
    {
        return Err(TrafficError::new(
            "circuit_breaker",
            "give at least one limit or outlier-detection field",
        ));
    }
    Ok(breaker)
}
