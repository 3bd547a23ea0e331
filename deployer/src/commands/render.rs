//! `deployer render`: the mesh, its filter delivery and the destination, checked up front;
//! then render into memory and write out in one go.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::cli::RenderArgs;
use crate::output;
use meshtally_mesh::model::{Delivery, Mesh};
use meshtally_mesh::render;

/// Everything `render` needs, already read and checked.
#[derive(Debug)]
pub struct RenderPlan {
    pub mesh: Mesh,
    pub delivery: Delivery,
    /// `None`: stdout.
    pub output: Option<PathBuf>,
}

pub fn plan(args: RenderArgs) -> anyhow::Result<RenderPlan> {
    let mesh = args.mesh.mesh()?;
    let delivery = crate::meshfile::delivery(&mesh.wasm)?;
    Ok(RenderPlan {
        mesh,
        delivery,
        output: args.output,
    })
}

impl RenderPlan {
    pub fn run(self) -> anyhow::Result<()> {
        let bundle = render::render(&self.mesh, &self.delivery)?;
        match &self.output {
            None => output::write_stdout(&bundle)?,
            Some(dir) => output::write_folder(&bundle, dir)
                .with_context(|| format!("writing the render to {}", dir.display()))?,
        }
        Ok(())
    }
}
