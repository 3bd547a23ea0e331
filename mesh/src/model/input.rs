//! What the user asked for, before checking: the mesh file's fields and the command-line flags,
//! both optional field by field, merged with flags winning.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::traffic::{
    CircuitBreakerInput, FaultInput, MatchInput, Millis, RetriesInput, TrafficInput, VersionInput,
};
use super::{
    Api, Channel, ExternalInput, FailStrategy, ModelError, MtlsMode, OutboundPolicy, Sampling,
};

/// How the services are chosen. One field, so a flag of either kind overrides the file's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceChoice {
    /// `N` generated names (`service-a`, …) on `base_port + i`.
    Count(u64),
    /// Given names on `base_port + i`, or on an explicit port each.
    Listed(Vec<ServiceEntry>),
}

impl ServiceChoice {
    /// The `--services N` / `--names a,b` flags; a count wins, as clap lets only one through.
    pub fn from_flags(count: Option<u64>, names: Option<&[String]>) -> Option<ServiceChoice> {
        match (count, names) {
            (Some(n), _) => Some(ServiceChoice::Count(n)),
            (None, Some(names)) => Some(ServiceChoice::Listed(
                names
                    .iter()
                    .map(|name| ServiceEntry::named(name.clone()))
                    .collect(),
            )),
            (None, None) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub name: String,
    /// Defaults to `base_port + i`, `i` being the entry's position.
    pub port: Option<u64>,
    /// Versions, matches, timeout, retries, fault, circuit breaker (see `model::traffic`).
    pub traffic: TrafficInput,
}

impl ServiceEntry {
    /// A service with every field but its name left to the defaults.
    pub fn named(name: String) -> ServiceEntry {
        ServiceEntry {
            name,
            port: None,
            traffic: TrafficInput::default(),
        }
    }
}

/// A `{name, port, versions, …}` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    name: String,
    #[serde(default)]
    port: Option<u64>,
    #[serde(default)]
    versions: Option<Vec<VersionInput>>,
    #[serde(default, rename = "match")]
    matches: Option<Vec<MatchInput>>,
    #[serde(default)]
    timeout: Option<Millis>,
    #[serde(default)]
    retries: Option<RetriesInput>,
    #[serde(default)]
    fault: Option<FaultInput>,
    #[serde(default)]
    circuit_breaker: Option<CircuitBreakerInput>,
}

impl From<EntryFile> for ServiceEntry {
    fn from(e: EntryFile) -> ServiceEntry {
        ServiceEntry {
            name: e.name,
            port: e.port,
            traffic: TrafficInput {
                versions: e.versions,
                matches: e.matches,
                timeout: e.timeout,
                retries: e.retries,
                fault: e.fault,
                circuit_breaker: e.circuit_breaker,
            },
        }
    }
}

/// Every input field, each optional: a mesh file, the flags, or the two merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshInput {
    pub services: Option<ServiceChoice>,
    pub namespace: Option<String>,
    pub base_port: Option<u64>,
    pub replicas: Option<u64>,
    pub image: Option<String>,
    pub wasm_url: Option<String>,
    pub wasm_sha256: Option<String>,
    pub wasm_file: Option<PathBuf>,
    pub mtls: Option<MtlsMode>,
    pub fail_strategy: Option<FailStrategy>,
    pub api: Option<Api>,
    pub gateway_api_channel: Option<Channel>,
    pub sampling: Option<Sampling>,
    pub outbound_policy: Option<OutboundPolicy>,
    pub external: Option<Vec<ExternalInput>>,
}

/// The mesh file as written. `services` is a count or a list whose entries are a name or a
/// `{name, port}`; `names` is a list of names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of mesh fields")]
struct MeshFile {
    #[serde(default)]
    services: Option<ServicesField>,
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    base_port: Option<u64>,
    #[serde(default)]
    replicas: Option<u64>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    wasm_url: Option<String>,
    #[serde(default)]
    wasm_sha256: Option<String>,
    #[serde(default)]
    wasm_file: Option<PathBuf>,
    #[serde(default)]
    api: Option<Api>,
    #[serde(default)]
    gateway_api_channel: Option<Channel>,
    #[serde(default)]
    outbound_policy: Option<OutboundPolicy>,
    #[serde(default)]
    external: Option<Vec<ExternalInput>>,
}

#[derive(Debug)]
struct ServicesField(ServiceChoice);

impl MeshInput {
    /// A mesh file's text, read from `path` by the caller. A relative `wasm_file` in it is
    /// taken relative to the file's folder, so the file means the same thing from wherever it
    /// is used.
    pub fn from_text(path: &Path, text: &str) -> Result<MeshInput, ModelError> {
        let mut input = MeshInput::from_yaml(text).map_err(|e| ModelError::FileSyntax {
            path: path.to_owned(),
            detail: explained(&e.to_string(), text),
        })?;
        if let Some(file) = input.wasm_file.take() {
            let base = path.parent().unwrap_or(Path::new(""));
            input.wasm_file = Some(base.join(file));
        }
        Ok(input)
    }

    /// Parses mesh-file text. Errors carry serde_norway's line and column.
    pub fn from_yaml(text: &str) -> Result<MeshInput, serde_norway::Error> {
        // An empty file is an empty mapping, not an error: every field has a default.
        let file: MeshFile = if text.trim().is_empty() {
            MeshFile::default()
        } else {
            serde_norway::from_str(text)?
        };
        let services = match (file.services, file.names) {
            (Some(_), Some(_)) => {
                let line = super::locate::line_of(text, &super::FieldPath::key("names"))
                    .map(|n| format!(" (`names` at line {n})"))
                    .unwrap_or_default();
                return Err(de::Error::custom(format!(
                    "`services` and `names` both choose the services: give one{line}"
                )));
            }
            (Some(ServicesField(choice)), None) => Some(choice),
            (None, Some(names)) => Some(ServiceChoice::Listed(
                names.into_iter().map(ServiceEntry::named).collect(),
            )),
            (None, None) => None,
        };
        Ok(MeshInput {
            services,
            namespace: file.namespace,
            base_port: file.base_port,
            replicas: file.replicas,
            image: file.image,
            wasm_url: file.wasm_url,
            wasm_sha256: file.wasm_sha256,
            wasm_file: file.wasm_file,
            api: file.api,
            gateway_api_channel: file.gateway_api_channel,
            outbound_policy: file.outbound_policy,
            external: file.external,
            // Flags only: how the mesh treats traffic is chosen where it runs.
            mtls: None,
            fail_strategy: None,
            sampling: None,
        })
    }

    /// `self` (the flags) over `file`, field by field, except that the three module fields
    /// go together: a digest from the file must not attach to a url from the flags, and a
    /// `--wasm-file` must beat the file's url.
    pub fn over(self, file: MeshInput) -> MeshInput {
        let flags_choose_module =
            self.wasm_url.is_some() || self.wasm_sha256.is_some() || self.wasm_file.is_some();
        let module = if flags_choose_module { &self } else { &file };
        let (wasm_url, wasm_sha256, wasm_file) = (
            module.wasm_url.clone(),
            module.wasm_sha256.clone(),
            module.wasm_file.clone(),
        );
        MeshInput {
            services: self.services.or(file.services),
            namespace: self.namespace.or(file.namespace),
            base_port: self.base_port.or(file.base_port),
            replicas: self.replicas.or(file.replicas),
            image: self.image.or(file.image),
            wasm_url,
            wasm_sha256,
            wasm_file,
            mtls: self.mtls.or(file.mtls),
            fail_strategy: self.fail_strategy.or(file.fail_strategy),
            api: self.api.or(file.api),
            gateway_api_channel: self.gateway_api_channel.or(file.gateway_api_channel),
            sampling: self.sampling.or(file.sampling),
            outbound_policy: self.outbound_policy.or(file.outbound_policy),
            external: self.external.or(file.external),
        }
    }
}

/// The parser's message, with the line of an unknown field when it gave none, and the nearest
/// known field or value for a misspelt one (`service` → `services`).
fn explained(message: &str, text: &str) -> String {
    let mut out = message.to_owned();
    if message.ends_with("expected a mapping of mesh fields") {
        // The whole file is of the wrong shape: its first line says so.
        out.push_str(" at line 1");
    }
    let unknown = ["unknown field `", "unknown variant `"]
        .iter()
        .find_map(|prefix| message.split_once(prefix))
        .and_then(|(_, rest)| rest.split_once('`'));
    let Some((typed, rest)) = unknown else {
        return out;
    };
    if !message.contains(" at line ") {
        // serde_norway leaves out a position at the very start of the file.
        let line = text.lines().position(|l| {
            let l = l.trim_start().trim_start_matches("- ").trim_start();
            l.strip_prefix(typed)
                .is_some_and(|r| r.trim_start().starts_with(':'))
        });
        if let Some(n) = line {
            out.push_str(&format!(" at line {}", n + 1));
        }
    }
    let known: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let nearest = known
        .iter()
        .map(|k| (strsim::jaro_winkler(typed, k), *k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((_, k)) = nearest {
        out.push_str(&format!("; did you mean `{k}`?"));
    }
    out
}

impl<'de> Deserialize<'de> for ServicesField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A hand-written visitor rather than `#[serde(untagged)]`, which would turn a typo inside
        // one entry into "did not match any variant" and lose its line and column.
        struct ServicesVisitor;

        impl<'de> Visitor<'de> for ServicesVisitor {
            type Value = ServicesField;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a service count or a list of {name, port} entries")
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<ServicesField, E> {
                Ok(ServicesField(ServiceChoice::Count(n)))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ServicesField, E> {
                u64::try_from(n)
                    .map(|n| ServicesField(ServiceChoice::Count(n)))
                    .map_err(|_| E::custom(format!("service count {n} is negative")))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ServicesField, A::Error> {
                let mut entries = Vec::new();
                while let Some(EntryField(entry)) = seq.next_element()? {
                    entries.push(entry);
                }
                Ok(ServicesField(ServiceChoice::Listed(entries)))
            }
        }

        deserializer.deserialize_any(ServicesVisitor)
    }
}

/// A `services` list entry: `{name, port}`, or just the name.
struct EntryField(ServiceEntry);

impl<'de> Deserialize<'de> for EntryField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = EntryField;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a service name or a {name, port} entry")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<EntryField, E> {
                Ok(EntryField(ServiceEntry::named(name.to_owned())))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<EntryField, A::Error> {
                EntryFile::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|e| EntryField(e.into()))
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_list_and_names() {
        let count = MeshInput::from_yaml("services: 4\nnamespace: demo\n").unwrap();
        assert_eq!(count.services, Some(ServiceChoice::Count(4)));
        assert_eq!(count.namespace.as_deref(), Some("demo"));

        let list =
            MeshInput::from_yaml("services:\n  - name: web\n    port: 9000\n  - name: api\n")
                .unwrap();
        assert_eq!(
            list.services,
            Some(ServiceChoice::Listed(vec![
                ServiceEntry {
                    port: Some(9000),
                    ..ServiceEntry::named("web".into())
                },
                ServiceEntry::named("api".into()),
            ]))
        );

        let names = MeshInput::from_yaml("names: [x, y]\n").unwrap();
        assert!(matches!(names.services, Some(ServiceChoice::Listed(v)) if v.len() == 2));
        let mixed = MeshInput::from_yaml("services: [x, {name: y, port: 9}]\n").unwrap();
        assert_eq!(
            mixed.services,
            Some(ServiceChoice::Listed(vec![
                ServiceEntry::named("x".into()),
                ServiceEntry {
                    port: Some(9),
                    ..ServiceEntry::named("y".into())
                },
            ]))
        );
        assert_eq!(MeshInput::from_yaml("").unwrap(), MeshInput::default());
    }

    #[test]
    fn errors_carry_a_location() {
        let unknown = MeshInput::from_yaml("namespace: demo\nreplica: 2\n").unwrap_err();
        let text = unknown.to_string();
        assert!(text.contains("unknown field `replica`"), "{text}");
        assert!(text.contains("line 2 column 1"), "{text}");

        let entry = MeshInput::from_yaml("services:\n  - name: a\n    prot: 1\n").unwrap_err();
        let text = entry.to_string();
        assert!(text.contains("unknown field `prot`"), "{text}");
        assert!(text.contains("line 3"), "{text}");

        let both = MeshInput::from_yaml("services: 2\nnames: [a]\n").unwrap_err();
        assert!(both.to_string().contains("give one"), "{both}");

        let negative = MeshInput::from_yaml("services: -1\n").unwrap_err();
        assert!(negative.to_string().contains("negative"), "{negative}");
    }

    #[test]
    fn flags_win() {
        let file = MeshInput {
            services: Some(ServiceChoice::Count(5)),
            namespace: Some("file".into()),
            replicas: Some(3),
            ..MeshInput::default()
        };
        let flags = MeshInput {
            namespace: Some("flag".into()),
            ..MeshInput::default()
        };
        let merged = flags.over(file);
        assert_eq!(merged.namespace.as_deref(), Some("flag"));
        assert_eq!(merged.services, Some(ServiceChoice::Count(5)));
        assert_eq!(merged.replicas, Some(3));
    }

    #[test]
    fn module_fields_move_together() {
        let file = MeshInput {
            wasm_url: Some("oci://a".into()),
            wasm_sha256: Some("d".into()),
            ..MeshInput::default()
        };
        let flags = MeshInput {
            wasm_url: Some("oci://b".into()),
            ..MeshInput::default()
        };
        let merged = flags.over(file.clone());
        assert_eq!(merged.wasm_url.as_deref(), Some("oci://b"));
        assert_eq!(merged.wasm_sha256, None);

        let flags = MeshInput {
            wasm_file: Some("m.wasm".into()),
            ..MeshInput::default()
        };
        let merged = flags.over(file.clone());
        assert_eq!(merged.wasm_url, None);
        assert_eq!(merged.wasm_file, Some("m.wasm".into()));

        let merged = MeshInput::default().over(file.clone());
        assert_eq!(merged.wasm_url, file.wasm_url);
        assert_eq!(merged.wasm_sha256, file.wasm_sha256);
    }
}
