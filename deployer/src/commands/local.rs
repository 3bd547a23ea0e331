//! `up`, `down`, `reload`, `status` and the hidden `supervise`: flags to a checked plan, then the work in
//! `crate::local`. (`verify` and `stats` are in `commands::observe`.)

use anyhow::{Context as _, Result};

use crate::cli::{ReloadArgs, StateArgs, StatusArgs, UpArgs};
use crate::local::live;
use crate::local::observed::LocalReader;
use crate::local::status;
use crate::local::up::{self, UpRequest};
use crate::output::print;

pub fn up(args: UpArgs) -> Result<()> {
    let mesh = args.mesh.mesh()?;
    let request = UpRequest {
        gateway_port: args.gateway_port,
        detach: args.detach,
        state_dir: args.state.for_up(),
        envoy: args.envoy,
        wasm: args.wasm,
        service_bin: args.service_bin,
        plugin_config: args.plugin_config,
        prometheus: args.prometheus,
        tracing: args.tracing,
        sampling_given: args.mesh.sampling.is_some(),
        mesh_file: args.mesh.file.clone(),
    };
    up::plan(&mesh, request)?.run()
}

pub fn down(args: StateArgs) -> Result<()> {
    up::down(&args.find().root)
}

pub fn reload(args: ReloadArgs) -> Result<()> {
    let state = args.state.find();
    LocalReader::open(&state)?;
    if let Some(wasm) = &args.wasm {
        let published = live::reload_module(&state, wasm)?;
        let sha = match &published {
            live::Published::Confirmed { layout, .. } => {
                layout.module_sha256.clone().unwrap_or_default()
            }
            live::Published::Unchanged => String::new(),
        };
        print(&format!(
            "{}\n",
            published.line(
                &format!("module sha256:{sha}"),
                &format!("every sidecar already runs {}", wasm.display())
            )
        ))?;
        if args.file.is_none() {
            return Ok(());
        }
    }
    let file = match &args.file {
        Some(file) => file.clone(),
        None => state.read_layout()?.mesh_file.with_context(|| {
            format!(
                "the mesh in {} was started without a mesh file: pass the one to read with -f FILE",
                state.root.display()
            )
        })?,
    };
    let published = live::reload_rules(&state, &file)?;
    print(&format!(
        "{}\n",
        published.line(
            &format!("traffic rules from {}", file.display()),
            &format!("{}: no traffic rule changed", file.display())
        )
    ))?;
    Ok(())
}

pub fn status(args: StatusArgs) -> Result<()> {
    let status = status::read(&args.state.find())?;
    if args.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&status)?))?;
    } else {
        print(&status.table())?;
    }
    Ok(())
}

pub fn supervise(args: StateArgs) -> Result<()> {
    up::supervise(&args.for_up())
}
