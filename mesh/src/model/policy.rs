//! How the mesh treats traffic, whoever runs it: mTLS between sidecars (Istio's
//! PeerAuthentication mode) and what a filter that cannot load does (the WasmPlugin's
//! failStrategy). One enum each, spelled as Istio spells them in YAML (`STRICT`, `FAIL_OPEN`)
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
}
