//! The mesh the deployer acts on, from a mesh file and flags: the deployer reads the file and
//! the filter module (the model, `meshtally-mesh`, never touches the disk), merges the flags
//! over the file, checks the result, and spells every problem at its line of the file.

use std::io::Read as _;
use std::path::Path;

use anyhow::bail;

use meshtally_mesh::model::error::SHOWN_PROBLEMS;
use meshtally_mesh::model::wasm::{Delivery, Module, WasmSource, MAX_MODULE_BYTES};
use meshtally_mesh::model::{locate, Mesh, MeshInput, ModelError};

/// The merged input checked; a refusal names every problem, each at its own line of the mesh
/// file (`canary.yaml:6: services[0].versions: …`) when the file, not a flag, gave the field.
pub(crate) fn checked(
    flags: &MeshInput,
    file: Option<&Path>,
    input: MeshInput,
) -> anyhow::Result<Mesh> {
    let problems = match Mesh::check(input) {
        Ok(mesh) => return Ok(mesh),
        Err(problems) => problems,
    };
    let text = file.and_then(|f| std::fs::read_to_string(f).ok());
    let mut spelled: Vec<String> = problems
        .iter()
        .map(|p| {
            let located = match (&text, file) {
                (Some(text), Some(file)) if !flag_sets(flags, p.at.root()) => {
                    [p.at.clone(), p.at.with_root("names")]
                        .into_iter()
                        .find_map(|at| Some((locate::line_of(text, &at)?, at)))
                        .map(|(line, at)| format!("{}:{line}: {at}: ", file.display()))
                }
                _ => None,
            };
            match (located, &p.error) {
                // The path names the rule's field already.
                (Some(at), meshtally_mesh::model::ModelError::Traffic { service, error }) => {
                    format!("{at}service `{service}`: {}", error.reason)
                }
                (Some(at), meshtally_mesh::model::ModelError::External { entry, reason, .. }) => {
                    format!("{at}external `{entry}`: {reason}")
                }
                (at, error) => format!("{}{error}", at.unwrap_or_default()),
            }
        })
        .collect();
    if spelled.len() == 1 {
        bail!("invalid mesh: {}", spelled.remove(0));
    }
    let count = spelled.len();
    if count > SHOWN_PROBLEMS {
        spelled.truncate(SHOWN_PROBLEMS);
        spelled.push(format!("and {} more", count - SHOWN_PROBLEMS));
    }
    bail!("invalid mesh: {count} problems: {}", spelled.join("; "))
}

/// Whether a flag gave the input's field `root` (then the file's line would mislead).
fn flag_sets(flags: &MeshInput, root: Option<&str>) -> bool {
    match root {
        Some("services" | "names") => flags.services.is_some(),
        Some("namespace") => flags.namespace.is_some(),
        Some("base_port") => flags.base_port.is_some(),
        Some("replicas") => flags.replicas.is_some(),
        Some("image") => flags.image.is_some(),
        Some("api") => flags.api.is_some(),
        Some("gateway_api_channel") => flags.gateway_api_channel.is_some(),
        Some("outbound_policy") => flags.outbound_policy.is_some(),
        Some("external") => flags.external.is_some(),
        Some("wasm_url" | "wasm_sha256") => flags.wasm_url.is_some() || flags.wasm_sha256.is_some(),
        _ => true,
    }
}

/// The mesh file's fields, or nothing given when there is no file.
pub(crate) fn read(file: Option<&Path>) -> anyhow::Result<MeshInput> {
    let Some(path) = file else {
        return Ok(MeshInput::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::FileUnreadable {
        path: path.to_owned(),
        source,
    })?;
    Ok(MeshInput::from_text(path, &text)?)
}

/// A mesh from flags over a mesh file, checked.
pub(crate) fn merged(flags: MeshInput, file: Option<&Path>) -> anyhow::Result<Mesh> {
    let input = flags.clone().over(read(file)?);
    checked(&flags, file, input)
}

/// What `render` and `apply` deliver: the remote reference, or the module file read for the
/// ConfigMap.
pub(crate) fn delivery(source: &WasmSource) -> Result<Delivery, ModelError> {
    match source {
        WasmSource::Remote { url, sha256 } => Ok(Delivery::Remote {
            url: url.clone(),
            sha256: sha256.clone(),
        }),
        WasmSource::ConfigMap { path } => module(path).map(Delivery::ConfigMap),
    }
}

/// Reads a built module, at most one byte past what a ConfigMap holds, so an oversized file
/// is refused without being read whole.
fn module(path: &Path) -> Result<Module, ModelError> {
    let unreadable = |source| ModelError::ModuleUnreadable {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ModelError::ModuleMissing(path.to_owned()),
        _ => unreadable(e),
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_MODULE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    let size = if bytes.len() as u64 > MAX_MODULE_BYTES {
        std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len())
    } else {
        bytes.len() as u64
    };
    Module::checked(path, bytes, size)
}
