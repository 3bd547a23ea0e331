//! `shift`: a service's version weights, parsed and checked from `v1=90,v2=10`, then set on the
//! local mesh (a new xDS config version in every proxy) or, with `--cluster`, on the cluster's
//! VirtualServices.

use anyhow::{bail, Result};

use crate::cli::ShiftArgs;
use crate::cluster::{shift, shift_routes};
use crate::commands::target::Target;
use crate::local::live;
use meshtally_mesh::model::Api;

/// Weights per version, as typed: `NAME=WEIGHT,…`, integers summing to 100.
pub(crate) fn parse_weights(text: &str) -> Result<Vec<(String, u32)>> {
    let mut out: Vec<(String, u32)> = Vec::new();
    for part in text.split(',') {
        let Some((name, weight)) = part.split_once('=') else {
            bail!("weights {text:?}: {part:?} is not VERSION=WEIGHT (e.g. v1=90,v2=10)");
        };
        let name = name.trim();
        if !meshtally_mesh::model::names::is_dns1123_label(name) {
            bail!("weights {text:?}: {name:?} is not a version name (a DNS-1123 label)");
        }
        let weight: u32 = match weight.trim().parse() {
            Ok(w) if w <= 100 => w,
            _ => bail!("weights {text:?}: the weight of {name} must be an integer from 0 to 100, not {weight:?}"),
        };
        if out.iter().any(|(n, _)| n == name) {
            bail!("weights {text:?}: {name} is given twice");
        }
        out.push((name.to_owned(), weight));
    }
    let sum: u32 = out.iter().map(|(_, w)| w).sum();
    if sum != 100 {
        bail!("weights {text:?}: they sum to {sum}, not 100");
    }
    Ok(out)
}

pub fn shift(args: ShiftArgs) -> Result<()> {
    let weights = parse_weights(&args.weights)?;
    let state = match Target::resolve(args.target)? {
        Target::Local(state) => {
            if args.api.is_some() {
                bail!("--api names how a cluster's mesh was applied: add --cluster (or --context CTX), or leave it out for the local mesh");
            }
            state
        }
        Target::Cluster {
            kubectl,
            namespace,
            file,
        } => {
            let api = match args.api {
                Some(api) => api,
                None => crate::meshfile::read(file.as_deref())?
                    .api
                    .unwrap_or_default(),
            };
            let (patched, kind) = match api {
                Api::Istio => (
                    shift::shift(&kubectl, &namespace, &args.service, &weights)?,
                    "virtualservice.networking.istio.io",
                ),
                Api::GatewayApi => (
                    shift_routes::shift(&kubectl, &namespace, &args.service, &weights)?,
                    "httproute.gateway.networking.k8s.io",
                ),
            };
            if patched.is_empty() {
                crate::output::print(&format!("{} already has these weights\n", args.service))?;
            }
            for p in patched {
                crate::output::print(&format!("{kind}/{} patched\n", p.name))?;
            }
            return Ok(());
        }
    };
    let published = live::shift(&state, &args.service, &weights)?;
    let split: Vec<String> = weights.iter().map(|(v, w)| format!("{v}={w}")).collect();
    let split = split.join(",");
    crate::output::print(&format!(
        "{}\n",
        published.line(
            &format!("{} {split}", args.service),
            &format!("{} already runs {split}", args.service)
        )
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_parse_and_bad_ones_name_the_fault() {
        assert_eq!(
            parse_weights("v1=90,v2=10").unwrap(),
            vec![("v1".to_owned(), 90), ("v2".to_owned(), 10)]
        );
        assert_eq!(parse_weights("v2=100").unwrap().len(), 1);
        for (bad, says) in [
            ("v1=50,v2=40", "sum to 90, not 100"),
            ("v1=150", "from 0 to 100"),
            ("v1=-5,v2=105", "from 0 to 100"),
            ("v1", "not VERSION=WEIGHT"),
            ("v1=50,v1=50", "given twice"),
            ("V_1=100", "not a version name"),
        ] {
            let err = parse_weights(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }
}
