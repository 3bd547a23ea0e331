//! Why a mesh was refused: one variant per cause, each a one-line lowercase message that names
//! the offending value, so the CLI can print it as is and a script can match on it.

use std::path::PathBuf;

use super::ports::{RESERVED_FIRST, RESERVED_LAST};

/// At most this many problems are spelled out; the rest are counted.
pub const SHOWN_PROBLEMS: usize = 10;

fn several(errors: &[ModelError]) -> String {
    let mut shown: Vec<String> = errors
        .iter()
        .take(SHOWN_PROBLEMS)
        .map(ToString::to_string)
        .collect();
    if errors.len() > SHOWN_PROBLEMS {
        shown.push(format!("and {} more", errors.len() - SHOWN_PROBLEMS));
    }
    shown.join("; ")
}

impl ModelError {
    /// One problem as itself, several as [`ModelError::Several`].
    pub fn from_problems(mut problems: Vec<super::Located>) -> ModelError {
        if problems.len() == 1 {
            problems.remove(0).error
        } else {
            ModelError::Several(problems.into_iter().map(|p| p.error).collect())
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the mesh needs at least one service, got 0")]
    NoServices,
    #[error("{count} services are more than the {max} this tool renders")]
    TooManyServices { count: u64, max: usize },
    #[error(
        "service name `{0}` is not a DNS-1035 label (1-63 of a-z, 0-9 and '-', \
         starting with a letter and ending with a letter or digit)"
    )]
    BadServiceName(String),
    #[error("service name `{0}` uses the prefix `meshtally-`, which names the mesh's own objects")]
    ReservedServiceName(String),
    #[error("service name `{0}` is given twice")]
    DuplicateService(String),
    #[error(
        "namespace `{0}` is not a DNS-1123 label (1-63 of a-z, 0-9 and '-', \
         starting and ending with a letter or digit)"
    )]
    BadNamespace(String),
    #[error("base port {0} is outside 1-65535")]
    BasePortOutOfRange(u64),
    #[error("service `{service}`: port {port} is outside 1-65535")]
    PortOutOfRange { service: String, port: u64 },
    #[error(
        "service `{service}`: port {port} is reserved by the Istio sidecar \
         ({RESERVED_FIRST}-{RESERVED_LAST})"
    )]
    ReservedPort { service: String, port: u16 },
    #[error("services `{first}` and `{second}` both use port {port}")]
    DuplicatePort {
        port: u16,
        first: String,
        second: String,
    },
    #[error("service `{service}`: {error}")]
    Traffic {
        service: String,
        error: super::traffic::TrafficError,
    },
    #[error("external `{entry}`: {field}: {reason}")]
    External {
        entry: String,
        field: String,
        reason: String,
    },
    #[error("replicas {0} is more than Kubernetes allows (2147483647)")]
    TooManyReplicas(u64),
    #[error("image `{0}` is empty or contains whitespace")]
    BadImage(String),
    #[error("wasm url `{0}` must start with oci:// or https://")]
    WasmUrlScheme(String),
    #[error("wasm url `{0}` has nothing after the scheme")]
    WasmUrlEmpty(String),
    #[error("wasm sha256 `{0}` is not 64 lowercase hex digits")]
    BadDigest(String),
    #[error("wasm sha256 {flag} disagrees with the digest {url} in the url")]
    DigestMismatch { url: String, flag: String },
    #[error(
        "a wasm sha256 needs a wasm url: the ConfigMap delivery hashes the module file itself"
    )]
    DigestWithoutUrl,
    #[error("wasm module {} not found: build it with `make wasm`, or pass --wasm-file or --wasm-url", .0.display())]
    ModuleMissing(PathBuf),
    #[error("cannot read wasm module {}", path.display())]
    ModuleUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "wasm module {} is {size} bytes, over the 1 MiB a ConfigMap holds: publish it and pass --wasm-url",
        path.display()
    )]
    ModuleTooLarge { path: PathBuf, size: u64 },
    #[error("{} is not a wasm module (no \\0asm magic)", .0.display())]
    ModuleNotWasm(PathBuf),
    #[error("cannot read mesh file {}", path.display())]
    FileUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every problem of one input, in the order found (the CLI shows at most ten).
    #[error("{} problems: {}", .0.len(), several(.0))]
    Several(Vec<ModelError>),
    /// Not YAML, or not the mesh's shape: the parser's words with its line, and a did-you-mean
    /// for a misspelt field or value.
    #[error("mesh file {}: {detail}", path.display())]
    FileSyntax { path: PathBuf, detail: String },
}
