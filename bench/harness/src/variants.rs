//! The variants under test, what each one puts in the proxy's filter chain, which variants it
//! is compared with, and what a tagged request must look like when it reaches the upstream
//! (checked once per variant before measuring, so a misconfigured filter cannot pass as fast).

use std::path::PathBuf;

/// What sits in the proxy's HTTP filter chain before the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Nothing: the limit.
    None,
    /// `bench/probe-filter` making one kind of host call [`PROBE_TIMES`] times per request
    /// (callgrind only): the price of that call.
    Probe(&'static str),
    /// The do-nothing proxy-wasm module: the Wasm floor.
    EmptyWasm,
    /// meshtally with this plugin-config `direction`.
    Meshtally(&'static str),
    /// The same tagging in Lua (`envoy.filters.http.lua`, inline code).
    Lua,
    /// The same tags as static route header rules (no filter; hops cannot be computed).
    Native,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub id: String,
    pub label: String,
    pub filter: Filter,
    /// The client talks mTLS to the proxy (client certificate with a SPIFFE URI SAN).
    pub mtls: bool,
    /// A meshtally build to load instead of the default module (`--candidate`).
    pub module: Option<PathBuf>,
}

/// What the upstream must have received (echoed back in `x-echo-*`), and the response tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub source: &'static str,
    pub hops: &'static str,
    pub verified: &'static str,
    pub served_by: &'static str,
}

/// The name meshtally, Lua and the native rules give this proxy's service.
pub const SERVICE: &str = "bench-proxy";
/// What the load generator claims in `x-mesh-source`; only a filter that trusts it passes it on.
pub const CLAIMED_SOURCE: &str = "claimed-client";
/// The hop count the load generator sends.
pub const CLIENT_HOPS: &str = "1";

fn variant(id: &str, label: &str, filter: Filter, mtls: bool) -> Variant {
    Variant {
        id: id.to_owned(),
        label: label.to_owned(),
        filter,
        mtls,
        module: None,
    }
}

/// Every standard variant, in report order.
pub fn all() -> Vec<Variant> {
    vec![
        variant("none", "no filter", Filter::None, false),
        variant("empty", "empty Wasm filter", Filter::EmptyWasm, false),
        variant(
            "outbound",
            "meshtally outbound",
            Filter::Meshtally("outbound"),
            false,
        ),
        variant(
            "inbound",
            "meshtally inbound",
            Filter::Meshtally("inbound"),
            false,
        ),
        variant("lua", "Lua tagging", Filter::Lua, false),
        variant("native", "native header rules", Filter::Native, false),
        variant("none-mtls", "no filter, mTLS", Filter::None, true),
        variant(
            "empty-mtls",
            "empty Wasm filter, mTLS",
            Filter::EmptyWasm,
            true,
        ),
        variant(
            "inbound-mtls",
            "meshtally inbound, mTLS",
            Filter::Meshtally("inbound"),
            true,
        ),
    ]
}

/// How many times a probe repeats its host call per request.
pub const PROBE_TIMES: u32 = 10;

/// The host calls `bench/probe-filter` prices (its config names), in report order.
pub const PROBES: [&str; 9] = [
    "get_header",
    "set_header",
    "add_header",
    "add_response_header",
    "peer_identity",
    "get_headers",
    "increment",
    "record",
    "clock",
];

/// The calls whose price depends on the transport, also probed over mTLS (against the empty
/// filter over mTLS): the peer identity is absent over plain HTTP and a certificate's SAN over
/// mTLS.
pub const PROBES_MTLS: [&str; 1] = ["peer_identity"];

/// One probe variant per host call meshtally makes (or could make instead), then the mTLS ones.
/// A probe's price key is its id without `probe-` (`peer_identity-mtls`).
pub fn probes() -> Vec<Variant> {
    let plain = PROBES.iter().map(|call| Variant {
        id: format!("probe-{call}"),
        label: format!("probe: {PROBE_TIMES} × {call}"),
        filter: Filter::Probe(call),
        mtls: false,
        module: None,
    });
    let mtls = PROBES_MTLS.iter().map(|call| Variant {
        id: format!("probe-{call}-mtls"),
        label: format!("probe: {PROBE_TIMES} × {call}, mTLS"),
        filter: Filter::Probe(call),
        mtls: true,
        module: None,
    });
    plain.chain(mtls).collect()
}

pub fn by_id(id: &str) -> Option<Variant> {
    all().into_iter().find(|v| v.id == id)
}

/// `--candidate NAME[:inbound]=PATH`: meshtally (outbound unless `:inbound`) loaded from another
/// build of the module, measured in the same alternation as the rest — an A/B test of a filter
/// change on a noisy machine.
pub fn candidate(spec: &str) -> anyhow::Result<Variant> {
    let Some((name, path)) = spec.split_once('=') else {
        anyhow::bail!("--candidate wants NAME[:inbound]=PATH, got {spec:?}");
    };
    let (name, direction) = match name.trim().split_once(':') {
        None => (name.trim(), "outbound"),
        Some((name, "inbound")) => (name, "inbound"),
        Some((name, "outbound")) => (name, "outbound"),
        Some((_, other)) => {
            anyhow::bail!("--candidate {name}: direction {other:?} is neither inbound nor outbound")
        }
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_+.".contains(c))
    {
        anyhow::bail!("--candidate name {name:?}: use letters, digits and - _ + .");
    }
    let path = PathBuf::from(path);
    if !path.is_file() {
        anyhow::bail!("--candidate {name}: {} is not a file", path.display());
    }
    Ok(Variant {
        id: format!("candidate-{name}"),
        label: format!("meshtally {direction} [{name}]"),
        filter: Filter::Meshtally(direction),
        mtls: false,
        module: Some(path),
    })
}

impl Variant {
    /// The variant this one's ratios are taken against: same transport, no filter.
    pub fn none_baseline(&self) -> &'static str {
        if self.mtls {
            "none-mtls"
        } else {
            "none"
        }
    }

    /// The Wasm floor on the same transport.
    pub fn empty_baseline(&self) -> &'static str {
        if self.mtls {
            "empty-mtls"
        } else {
            "empty"
        }
    }

    pub fn is_meshtally(&self) -> bool {
        matches!(self.filter, Filter::Meshtally(_))
    }

    pub fn expect(&self) -> Expect {
        let untouched = Expect {
            source: CLAIMED_SOURCE,
            hops: CLIENT_HOPS,
            verified: "",
            served_by: "",
        };
        match self.filter {
            Filter::None | Filter::EmptyWasm => untouched,
            Filter::Probe("set_header") => Expect {
                source: SERVICE,
                ..untouched
            },
            Filter::Probe(_) => untouched,
            // Outbound names the caller; the hop count is the callee's side's (untouched here).
            Filter::Meshtally("outbound") => Expect {
                source: SERVICE,
                ..untouched
            },
            Filter::Meshtally(_) => Expect {
                // Inbound: a certificate names the caller; without one the claimed name (a
                // valid label) passes. The app gets the hop count its own calls carry: + 1.
                source: if self.mtls {
                    crate::certs::CLIENT_SA
                } else {
                    CLAIMED_SOURCE
                },
                hops: "2",
                verified: if self.mtls { "true" } else { "false" },
                served_by: SERVICE,
            },
            Filter::Lua => Expect {
                source: SERVICE,
                hops: "2",
                verified: "",
                served_by: SERVICE,
            },
            // Static rules cannot add one to a header; they set a fixed value.
            Filter::Native => Expect {
                source: SERVICE,
                hops: "1",
                verified: "",
                served_by: SERVICE,
            },
        }
    }
}

/// Lua doing meshtally's outbound tagging plus the inbound response tag: set `x-mesh-source`,
/// parse `x-mesh-hops` and set hops + 1, add `x-mesh-served-by` to the response.
pub const LUA_CODE: &str = r#"
function envoy_on_request(handle)
  local headers = handle:headers()
  local hops = tonumber(headers:get("x-mesh-hops")) or 0
  if hops < 0 then hops = 0 end
  headers:replace("x-mesh-source", "bench-proxy")
  headers:replace("x-mesh-hops", tostring(math.floor(hops) + 1))
end

function envoy_on_response(handle)
  handle:headers():replace("x-mesh-served-by", "bench-proxy")
end
"#;

/// Parses `--variants a,b,c` (standard ids, kept in report order) and appends the candidates.
pub fn select(ids: Option<&str>, candidates: &[String]) -> anyhow::Result<Vec<Variant>> {
    let mut out = match ids {
        None => all(),
        Some(ids) => {
            let wanted: Vec<&str> = ids
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            for id in &wanted {
                if by_id(id).is_none() {
                    let known: Vec<String> = all().into_iter().map(|v| v.id).collect();
                    anyhow::bail!("unknown variant {id:?}; known: {}", known.join(", "));
                }
            }
            all()
                .into_iter()
                .filter(|v| wanted.contains(&v.id.as_str()))
                .collect()
        }
    };
    for spec in candidates {
        out.push(candidate(spec)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_keeps_report_order_and_refuses_unknown_ids() {
        let ids: Vec<String> = select(Some("outbound, none"), &[])
            .unwrap()
            .into_iter()
            .map(|v| v.id)
            .collect();
        assert_eq!(ids, ["none", "outbound"]);
        assert!(select(Some("nope"), &[]).is_err());
        assert_eq!(select(None, &[]).unwrap().len(), 9);
    }

    #[test]
    fn candidates_need_a_name_and_a_file() {
        assert!(candidate("x").is_err());
        assert!(candidate("bad name=/dev/null").is_err());
        assert!(candidate("a=/nonexistent/module.wasm").is_err());
    }

    #[test]
    fn baselines_follow_the_transport() {
        let v = by_id("inbound-mtls").unwrap();
        assert_eq!(
            (v.none_baseline(), v.empty_baseline()),
            ("none-mtls", "empty-mtls")
        );
        assert_eq!(v.expect().source, crate::certs::CLIENT_SA);
    }
}
