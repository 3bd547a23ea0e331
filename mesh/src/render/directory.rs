//! The strings every service's objects repeat about every other service: its PEERS entry and
//! its mTLS identity. With N services each is used N-1 times, so they are built once per render
//! (at 1000 services that is a million uses).

use std::collections::HashMap;

use meshtally_wire::app::{format_peers, peer_entry};

use crate::model::{Mesh, Service};

pub struct Directory {
    /// Per service, in mesh order: `("name=http://fqdn:port", principal)`.
    entries: Vec<(String, String)>,
    position: HashMap<String, usize>,
    /// Length of all PEERS entries joined, an upper bound for any one service's PEERS.
    peers_len: usize,
    /// Length of all principals as YAML list items.
    principals_len: usize,
}

impl Directory {
    pub fn new(mesh: &Mesh) -> Directory {
        let entries: Vec<(String, String)> = mesh
            .services
            .iter()
            .map(|s| {
                let url = format!("http://{}:{}", mesh.fqdn(s), s.port);
                let peer = peer_entry(&s.name, &url);
                (peer, mesh.principal(s))
            })
            .collect();
        let position = mesh
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let peers_len = entries.iter().map(|(peer, _)| peer.len() + 1).sum();
        let principals_len = entries.iter().map(|(_, p)| p.len() + 12).sum();
        Directory {
            entries,
            position,
            peers_len,
            principals_len,
        }
    }

    fn others<'a>(&'a self, service: &Service) -> impl Iterator<Item = &'a (String, String)> {
        let own = self.position.get(&service.name).copied();
        self.entries
            .iter()
            .enumerate()
            .filter(move |(i, _)| Some(*i) != own)
            .map(|(_, entry)| entry)
    }

    /// About the size of one service's PEERS, to size buffers.
    pub fn peers_bytes(&self) -> usize {
        self.peers_len
    }

    /// About the size of one AuthorizationPolicy document, to size buffers.
    pub fn policy_bytes(&self) -> usize {
        self.principals_len + 1024
    }

    /// Every other service as `name=url`, comma-separated, in mesh order.
    pub fn peers(&self, service: &Service) -> String {
        format_peers(self.others(service).map(|(peer, _)| peer))
    }

    /// Every other service's identity, in mesh order.
    pub fn principals(&self, service: &Service) -> Vec<String> {
        self.others(service)
            .map(|(_, principal)| principal.clone())
            .collect()
    }
}
