//! The local mesh as `verify`, `stats`, `top`, `tap` and `edges` read it (`crate::observe`): the plan in its state
//! dir, and only while the mesh runs, so a stopped mesh gets one line that says so instead of
//! a "connection refused" per pair.

use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context as _, Result};
use meshtally_wire::metrics::REQUESTS_TOTAL;

use super::layout::{sidecar_name, Layout, GATEWAY};
use super::state::StateDir;
use crate::observe::tap::Tapped;
use crate::observe::{Counted, Gateway, ProxyRead, Reachable, METRIC_PREFIX};
use meshtally_envoy::admin::Admin;

/// A running local mesh as the observers read it (the twin of `cluster::sidecars`).
pub(crate) struct LocalReader {
    layout: Layout,
    state: StateDir,
}

impl LocalReader {
    /// The mesh of `state`, which must be running.
    pub(crate) fn open(state: &StateDir) -> Result<LocalReader> {
        let layout = state.read_layout()?;
        if !state.is_running() {
            bail!(
                "no mesh is running in {}: start it with `{}`",
                state.root.display(),
                state.cmd("up")
            );
        }
        Ok(LocalReader {
            layout,
            state: state.clone(),
        })
    }
}

impl Reachable for LocalReader {
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

impl LocalReader {
    /// Every proxy's name and admin endpoint: the sidecars, then the gateway.
    fn admins(&self) -> impl Iterator<Item = (String, Admin)> + '_ {
        self.layout
            .services
            .iter()
            .flat_map(|s| s.instances())
            .map(|i| (sidecar_name(&i.name), Admin(i.admin_port)))
            .chain([(GATEWAY.to_owned(), Admin(self.layout.gateway.admin_port))])
    }
}

impl Tapped for LocalReader {
    fn follow(
        &self,
        stop: &AtomicBool,
        ready: &mut dyn FnMut(usize),
        each: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        let logs = self
            .admins()
            .map(|(name, _)| self.state.access_log(&name))
            .collect();
        super::follow::follow(logs, stop, ready, each)
    }

    fn history(&self, each: &mut dyn FnMut(&str) -> Result<()>) -> Result<()> {
        for (name, _) in self.admins() {
            let path = self.state.access_log(&name);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            for line in text.lines() {
                each(line)?;
            }
        }
        Ok(())
    }
}

impl Counted for LocalReader {
    fn counters(&self) -> Result<Vec<(String, u64)>> {
        let mut all = Vec::new();
        for (_, admin) in self.admins() {
            all.extend(admin.counters(REQUESTS_TOTAL)?);
        }
        Ok(all)
    }

    fn proxies(&self) -> Result<Vec<ProxyRead>> {
        // Every version's sidecar belongs to its service; the gateway to none.
        let sidecars = self.layout.services.iter().flat_map(|s| {
            s.instances()
                .into_iter()
                .map(move |i| (sidecar_name(&i.name), i.admin_port, Some(s.name.clone())))
        });
        let gateway = (GATEWAY.to_owned(), self.layout.gateway.admin_port, None);
        Ok(sidecars
            .chain([gateway])
            .map(|(proxy, port, service)| ProxyRead {
                exposition: Admin(port)
                    .prometheus_of(METRIC_PREFIX)
                    .with_context(|| format!("reading {proxy}")),
                proxy,
                service,
            })
            .collect())
    }
}
