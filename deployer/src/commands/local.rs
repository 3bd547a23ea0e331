//! `up`, `down` and the hidden `supervise`: flags to a checked plan, then the work in
//! `crate::local`. (`verify` and `stats` are in `commands::observe`.)

use anyhow::Result;

use crate::cli::{StateArgs, UpArgs};
use crate::local::up::{self, UpRequest};

pub fn up(args: UpArgs) -> Result<()> {
    let mesh = args.mesh.mesh()?;
    let request = UpRequest {
        gateway_port: args.gateway_port,
        detach: args.detach,
        state_dir: args.state.state_dir,
        envoy: args.envoy,
        wasm: args.wasm,
        service_bin: args.service_bin,
        plugin_config: args.plugin_config,
    };
    up::plan(&mesh, request)?.run()
}

pub fn down(args: StateArgs) -> Result<()> {
    up::down(&args.state_dir)
}

pub fn supervise(args: StateArgs) -> Result<()> {
    up::supervise(&args.state_dir)
}
