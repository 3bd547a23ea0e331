//! How the mesh treats traffic, whoever runs it: mTLS between sidecars (Istio's
//! PeerAuthentication mode), what a filter that cannot load does (the WasmPlugin's
//! failStrategy) and the share of requests traced (the Telemetry's sampling). One enum each, spelled as Istio spells them in YAML (`STRICT`, `FAIL_OPEN`)
//! and as the flags do (`strict`, `fail-open`); `render` writes them into the Istio objects and
//! `up` into the local sidecars' Envoy configs.

use serde::{Deserialize, Serialize};

/// Istio's PeerAuthentication mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// mTLS between sidecars, plain HTTP accepted from outside the mesh (Istio PERMISSIVE).
    Permissive,
    /// mTLS only: plain HTTP to a sidecar is refused (Istio STRICT).
    #[default]
    Strict,
}

/// The WasmPlugin's `failStrategy`: what a module or plugin config that fails to load does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailStrategy {
    /// Skipped: traffic flows, untagged and uncounted (Istio FAIL_OPEN).
    FailOpen,
    /// All traffic is denied (Istio FAIL_CLOSE).
    FailClose,
}

impl FailStrategy {
    /// What the mesh does when none was chosen: the filter must never take traffic down, so
    /// the WasmPlugin says FAIL_OPEN (`up`, which can see the module before anything runs,
    /// refuses instead to start a mesh whose filter cannot load).
    pub fn or_default(chosen: Option<FailStrategy>) -> FailStrategy {
        chosen.unwrap_or(FailStrategy::FailOpen)
    }
}

/// The share of requests that start a trace, in hundredths of a percent (Istio's
/// `randomSamplingPercentage` takes a double; two decimals are finer than anyone samples).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Sampling(u16);

impl Sampling {
    /// Every request traced: the local mesh's default, and the render's (lower it on a busy
    /// cluster: `--sampling 1`).
    pub const ALL: Sampling = Sampling(10_000);

    /// As a percentage, 0–100.
    pub fn percent(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl Default for Sampling {
    fn default() -> Sampling {
        Sampling::ALL
    }
}

impl TryFrom<f64> for Sampling {
    type Error = String;

    fn try_from(percent: f64) -> Result<Sampling, String> {
        if !(0.0..=100.0).contains(&percent) {
            return Err(format!("{percent} is not a percentage from 0 to 100"));
        }
        let hundredths = (percent * 100.0).round();
        if (hundredths - percent * 100.0).abs() > 1e-6 {
            return Err(format!("{percent}: at most two decimals"));
        }
        // In 0..=10000 after the range check: the cast cannot truncate.
        Ok(Sampling(hundredths as u16))
    }
}

impl From<Sampling> for f64 {
    fn from(s: Sampling) -> f64 {
        s.percent()
    }
}

impl std::str::FromStr for Sampling {
    type Err = String;

    fn from_str(text: &str) -> Result<Sampling, String> {
        let percent: f64 = text
            .trim_end_matches('%')
            .parse()
            .map_err(|_| format!("`{text}` is not a number (a percentage, e.g. 10 or 0.5)"))?;
        Sampling::try_from(percent)
    }
}

impl std::fmt::Display for Sampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}%", self.percent())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spelled_as_istio_and_the_flags_spell_them() {
        let yaml = |v: serde_json::Value| v.as_str().unwrap().to_owned();
        assert_eq!(yaml(json!(MtlsMode::Strict)), "STRICT");
        assert_eq!(yaml(json!(MtlsMode::Permissive)), "PERMISSIVE");
        assert_eq!(yaml(json!(FailStrategy::FailOpen)), "FAIL_OPEN");
        assert_eq!(yaml(json!(FailStrategy::FailClose)), "FAIL_CLOSE");
        #[cfg(feature = "clap")]
        {
            use clap::ValueEnum as _;
            let flag = |v: Option<clap::builder::PossibleValue>| v.unwrap().get_name().to_owned();
            assert_eq!(flag(MtlsMode::Strict.to_possible_value()), "strict");
            assert_eq!(
                flag(FailStrategy::FailClose.to_possible_value()),
                "fail-close"
            );
        }
        assert_eq!(MtlsMode::default(), MtlsMode::Strict);
        assert_eq!(FailStrategy::or_default(None), FailStrategy::FailOpen);
    }

    #[test]
    fn sampling_is_a_percentage_with_two_decimals_at_most() {
        assert_eq!("10".parse::<Sampling>().unwrap().percent(), 10.0);
        assert_eq!("0.5%".parse::<Sampling>().unwrap().percent(), 0.5);
        assert_eq!("100".parse::<Sampling>(), Ok(Sampling::ALL));
        assert_eq!("0".parse::<Sampling>().unwrap().percent(), 0.0);
        for bad in ["101", "-1", "0.001", "ten", "NaN"] {
            assert!(bad.parse::<Sampling>().is_err(), "{bad}");
        }
        assert_eq!(Sampling::ALL.to_string(), "100%");
        assert_eq!(json!(Sampling::try_from(12.5).unwrap()), json!(12.5));
    }
}
