//! `up`, `down`, `reload`, `status` and the hidden `supervise`: flags to a checked plan, then the work in
//! `crate::local`. (`verify` and `stats` are in `commands::observe`.)

use anyhow::Result;

use crate::cli::{ReloadArgs, StateArgs, StatusArgs, UpArgs};
use crate::local::live;
use crate::local::observed::LocalMesh;
use crate::local::state::StateDir;
use crate::local::status;
use crate::local::up::{self, UpRequest};
use crate::output::print;

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
        prometheus: args.prometheus,
    };
    up::plan(&mesh, request)?.run()
}

pub fn down(args: StateArgs) -> Result<()> {
    up::down(&args.state_dir)
}

pub fn reload(args: ReloadArgs) -> Result<()> {
    let state = StateDir::new(&args.state.state_dir);
    LocalMesh::open(&state)?;
    if let Some(wasm) = &args.wasm {
        match live::reload_module(&state, wasm)? {
            None => println!("every sidecar already runs {}", wasm.display()),
            Some((layout, version)) => {
                let took = live::confirm(&layout, version, live::Change::Module)?;
                let sha = layout.module.as_deref().unwrap_or_default();
                live::report(&format!("module sha256:{sha}"), &layout, version, took);
            }
        }
    }
    Ok(())
}

pub fn status(args: StatusArgs) -> Result<()> {
    let status = status::read(&StateDir::new(&args.state.state_dir))?;
    if args.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&status)?))?;
    } else {
        print(&status.table())?;
    }
    Ok(())
}

pub fn supervise(args: StateArgs) -> Result<()> {
    up::supervise(&args.state_dir)
}
