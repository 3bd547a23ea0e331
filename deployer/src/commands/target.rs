//! The one place the flags' target becomes a mesh to work on: every reader, `shift` and
//! `verify` resolve [`TargetArgs`] here, once.

use anyhow::{bail, Result};

use crate::cli::TargetArgs;
use crate::cluster::kubectl::Kubectl;
use crate::local::state::StateDir;
use meshtally_mesh::model::{MeshInput, ServiceChoice};

/// The mesh a command works on.
pub(crate) enum Target {
    /// The local mesh of a state dir.
    Local(StateDir),
    /// A cluster's mesh: kubectl with its context, and the mesh's namespace.
    Cluster {
        kubectl: Kubectl,
        namespace: String,
        /// The mesh file given, for what else it says (`verify`'s services).
        file: Option<std::path::PathBuf>,
    },
}

impl Target {
    /// Resolves the flags: a cluster when `--cluster` or `--context` chose one (kubectl found
    /// now, the namespace checked as `render` checks it), else the local state dir. Cluster
    /// flags without a cluster are refused rather than ignored.
    pub(crate) fn resolve(args: TargetArgs) -> Result<Target> {
        if !args.on_cluster() {
            if let Some(flag) = [
                args.namespace.as_ref().map(|_| "--namespace"),
                args.file.as_ref().map(|_| "--file"),
            ]
            .into_iter()
            .flatten()
            .next()
            {
                bail!("{flag} names a cluster's mesh: add --cluster (or --context CTX), or leave it out for the local mesh");
            }
            return Ok(Target::Local(args.state.find()));
        }
        let namespace = namespace(args.namespace, args.file.as_deref())?;
        let kubectl = Kubectl::find(args.kubectl.as_deref(), args.context)?;
        Ok(Target::Cluster {
            kubectl,
            namespace,
            file: args.file,
        })
    }
}

/// The mesh's namespace from `--namespace` over a mesh file's, checked like `render` checks it.
pub(crate) fn namespace(flag: Option<String>, file: Option<&std::path::Path>) -> Result<String> {
    let flags = MeshInput {
        namespace: flag,
        ..MeshInput::default()
    };
    Ok(crate::meshfile::merged(flags, file)?.namespace)
}

/// The services of a cluster mesh, from the same flags and file `render` reads.
pub(crate) fn services(
    count: Option<u64>,
    names: Option<&[String]>,
    file: Option<&std::path::Path>,
) -> Result<Vec<String>> {
    let flags = MeshInput {
        services: ServiceChoice::from_flags(count, names),
        ..MeshInput::default()
    };
    Ok(crate::meshfile::merged(flags, file)?
        .services
        .into_iter()
        .map(|s| s.name)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser as _;

    fn resolve(args: &[&str]) -> Result<Target> {
        match Cli::try_parse_from(args).unwrap().command {
            crate::cli::Command::Top(top) => Target::resolve(top.from),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cluster_flags_without_a_cluster_are_refused_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_str().unwrap();
        assert!(matches!(
            resolve(&["deployer", "top", "--state-dir", state]).unwrap(),
            Target::Local(s) if s.root == dir.path()
        ));
        for flag in [&["--namespace", "ns"][..], &["-f", "mesh.yaml"][..]] {
            let mut args = vec!["deployer", "top", "--state-dir", state];
            args.extend(flag);
            let err = resolve(&args).err().unwrap().to_string();
            assert!(err.contains("add --cluster"), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }
}
