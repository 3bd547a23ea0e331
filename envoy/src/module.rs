//! The filter modules a local mesh runs, copied into its state dir under content-addressed
//! names (`wasm/meshtally-<sha256 prefix>.wasm`): Envoy only ever loads a file that is complete
//! and never changes, whatever happens to the module a build is rewriting. The Wasm VM id
//! carries the same digest, so Envoy's log line for the filter says which module it runs.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Hex digits of the sha256 kept in file names and VM ids: enough to tell builds apart.
const SHORT: usize = 16;
const PREFIX: &str = "meshtally-";
/// Every Wasm binary starts with `\0asm` and version 1.
const MAGIC: [u8; 8] = [0, b'a', b's', b'm', 1, 0, 0, 0];

/// A module copied into a state dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The full sha256 of the module, lowercase hex.
    pub sha256: String,
    pub path: PathBuf,
}

/// Where a module with this digest lives in `dir`.
pub fn path_in(dir: &Path, sha256: &str) -> PathBuf {
    let short = sha256.get(..SHORT).unwrap_or(sha256);
    dir.join(format!("{PREFIX}{short}.wasm"))
}

/// Copies the module at `src` into `dir` under its content address (read once, so a file being
/// rewritten yields one consistent copy or an error) and returns where it is.
pub fn install(src: &Path, dir: &Path) -> Result<Installed> {
    let bytes = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
    if !bytes.starts_with(&MAGIC) {
        bail!(
            "{} is not a Wasm module (no \\0asm header): pass the built filter, e.g. {}",
            src.display(),
            meshtally_wire::module::WORKSPACE_MODULE
        );
    }
    let sha256 = hex(&Sha256::digest(&bytes));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = path_in(dir, &sha256);
    if !path.exists() {
        let tmp = dir.join(format!(".{}.tmp", std::process::id()));
        std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(Installed { sha256, path })
}

/// The Wasm VM id for a module file: `meshtally@sha256:<prefix>` for a content-addressed copy,
/// plain `meshtally` for any other path. Envoy prefixes the filter's log lines with it.
pub fn vm_id(module: &Path) -> String {
    let short = module
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(PREFIX))
        .and_then(|n| n.strip_suffix(".wasm"))
        .filter(|h| h.len() == SHORT && h.bytes().all(|b| b.is_ascii_hexdigit()));
    match short {
        Some(h) => format!("meshtally@sha256:{h}"),
        None => "meshtally".to_owned(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Notices when a module file has been replaced (a `make wasm` while the mesh runs): a change
/// of size or modification time that then holds still for a moment, so a build that writes the
/// file in steps (cargo, then wasm-opt) is taken once it is done.
#[derive(Debug)]
pub struct Watch {
    path: PathBuf,
    seen: Option<(u64, SystemTime)>,
    pending: Option<((u64, SystemTime), std::time::Instant)>,
}

/// How long a changed module must stay unchanged before it is loaded.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(400);

impl Watch {
    pub fn new(path: &Path) -> Watch {
        Watch {
            path: path.to_path_buf(),
            seen: stamp(path),
            pending: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True once after the file changed and settled.
    pub fn changed(&mut self) -> bool {
        let now = stamp(&self.path);
        if now.is_none() || now == self.seen {
            self.pending = None;
            return false;
        }
        match self.pending {
            Some((stamp, since)) if Some(stamp) == now => {
                if since.elapsed() >= SETTLE {
                    self.seen = now;
                    self.pending = None;
                    return true;
                }
            }
            _ => self.pending = now.map(|s| (s, std::time::Instant::now())),
        }
        false
    }
}

fn stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_is_copied_under_its_digest_and_names_its_vm() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("m.wasm");
        std::fs::write(&src, [&MAGIC[..], b"one"].concat()).unwrap();
        let one = install(&src, &dir.path().join("store")).unwrap();
        assert_eq!(
            std::fs::read(&one.path).unwrap(),
            std::fs::read(&src).unwrap()
        );
        assert_eq!(
            vm_id(&one.path),
            format!("meshtally@sha256:{}", &one.sha256[..SHORT])
        );
        std::fs::write(&src, [&MAGIC[..], b"two"].concat()).unwrap();
        let two = install(&src, &dir.path().join("store")).unwrap();
        assert_ne!(one.path, two.path);
        assert!(one.path.exists(), "the running module is never overwritten");
        assert_eq!(vm_id(&src), "meshtally");
        std::fs::write(&src, b"not wasm").unwrap();
        let err = install(&src, dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a Wasm module"), "{err}");
    }

    #[test]
    fn a_replaced_file_is_reported_once_it_settles() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("m.wasm");
        std::fs::write(&src, b"a").unwrap();
        let mut watch = Watch::new(&src);
        assert!(!watch.changed());
        std::fs::write(&src, b"bb").unwrap();
        assert!(!watch.changed(), "not before it settles");
        std::thread::sleep(SETTLE + std::time::Duration::from_millis(50));
        assert!(watch.changed());
        assert!(!watch.changed(), "reported once");
    }
}
