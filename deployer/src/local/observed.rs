//! The local mesh as `verify` and `stats` read it (`crate::observe`): the plan in its state
//! dir, and only while the mesh runs, so a stopped mesh gets one line that says so instead of
//! a "connection refused" per pair.

use anyhow::{bail, Result};
use meshtally_core::metrics::REQUESTS_TOTAL;

use super::envoy::Admin;
use super::layout::Layout;
use super::state::StateDir;
use crate::observe::{Counted, Gateway, Reachable};

/// A running local mesh.
pub(crate) struct LocalMesh {
    layout: Layout,
}

impl LocalMesh {
    /// The mesh of `state`, which must be running.
    pub(crate) fn open(state: &StateDir) -> Result<LocalMesh> {
        let layout = state.read_layout()?;
        if !state.is_running() {
            bail!(
                "no mesh is running in {}: start it with `deployer up{}`",
                state.root.display(),
                state.flag()
            );
        }
        Ok(LocalMesh { layout })
    }
}

impl Reachable for LocalMesh {
    fn gateway(&self) -> Result<Gateway> {
        Ok(Gateway {
            host: "127.0.0.1".into(),
            port: self.layout.gateway.port,
        })
    }

    fn services(&self) -> Result<Vec<String>> {
        Ok(self
            .layout
            .services
            .iter()
            .map(|s| s.name.clone())
            .collect())
    }
}

impl Counted for LocalMesh {
    fn counters(&self) -> Result<Vec<(String, u64)>> {
        let admins = self
            .layout
            .services
            .iter()
            .map(|s| s.admin_port)
            .chain([self.layout.gateway.admin_port]);
        let mut all = Vec::new();
        for port in admins {
            all.extend(Admin(port).counters(REQUESTS_TOTAL)?);
        }
        Ok(all)
    }
}
