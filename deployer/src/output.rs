//! Where a render goes: stdout, or a folder that is replaced as a whole. The folder is written
//! beside the target under a temporary name and swapped in by rename, so an error at any point
//! leaves the old folder as it was and nothing half-written behind.

use std::fs;
use std::io::{self, BufWriter, IsTerminal as _, Write};
use std::path::{Path, PathBuf};

use meshtally_mesh::render::{kustomize::KUSTOMIZATION, Bundle, HEADER};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write to stdout")]
    Stdout(#[source] io::Error),
    #[error("output {} exists and is not a folder", .0.display())]
    NotAFolder(PathBuf),
    #[error(
        "refusing to replace {}: it is not empty and its kustomization.yaml was not written by `deployer render`",
        .0.display()
    )]
    NotARender(PathBuf),
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot move the new render into {}", path.display())]
    Replace {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Writes text to stdout. A reader that went away (`| head`) comes back as an error whose
/// source is the `BrokenPipe` io error, which `main` ends on quietly, where `println!` would
/// panic.
pub fn print(text: &str) -> Result<(), OutputError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(OutputError::Stdout)
}

/// `print!` through [`print`]: a closed pipe is an error to return, not a panic.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::print(&format!($($arg)*)) };
}
/// `println!` through [`print`]: a closed pipe is an error to return, not a panic.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::print(&format!("{}\n", format_args!($($arg)*))) };
}
pub(crate) use {out, outln};

/// The render as one YAML stream on stdout. On a terminal, the generated filter ConfigMap (the
/// module as base64, hundreds of kilobytes) is left out and a line on stderr says how to get
/// it; a pipe or a file gets every document, exactly what `apply` applies.
pub fn write_stdout(bundle: &Bundle) -> Result<(), OutputError> {
    let terminal = io::stdout().is_terminal();
    let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    let left_out = bundle
        .write_stream(&mut out, !terminal)
        .and_then(|left_out| out.flush().map(|()| left_out))
        .map_err(OutputError::Stdout)?;
    if let Some(bytes) = left_out {
        eprintln!(
            "# the filter ConfigMap ({} KiB of base64) is not shown on a terminal: redirect stdout \
             (`deployer render > mesh.yaml`) or use --output DIR",
            bytes.div_ceil(1024)
        );
    }
    Ok(())
}

/// Replaces `target` with exactly the bundle's files. An existing non-empty `target` must be a
/// previous render, so a mistyped `--output` cannot wipe an unrelated folder.
pub fn write_folder(bundle: &Bundle, target: &Path) -> Result<(), OutputError> {
    let existing = check_target(target)?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| OutputError::Write { path, source }
    };
    fs::create_dir_all(&parent).map_err(write_err(&parent))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "render".to_owned());
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.new-"))
        .tempdir_in(&parent)
        .map_err(write_err(&parent))?;
    for file in &bundle.files {
        let path = staging.path().join(&file.path);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(write_err(dir))?;
        }
        let shown = target.join(&file.path);
        let created = fs::File::create(&path).map_err(write_err(&shown))?;
        let mut out = BufWriter::new(created);
        file.write_to(&mut out)
            .and_then(|()| out.flush())
            .map_err(write_err(&shown))?;
    }
    open_permissions(staging.path()).map_err(write_err(target))?;

    let replace_err = |source| OutputError::Replace {
        path: target.to_owned(),
        source,
    };
    // The old folder is moved aside into a temporary folder of its own (renaming onto an empty
    // folder is allowed), which deletes it when dropped, and moved back if the swap fails.
    let old = if existing {
        let old = tempfile::Builder::new()
            .prefix(&format!(".{name}.old-"))
            .tempdir_in(&parent)
            .map_err(replace_err)?;
        fs::rename(target, old.path()).map_err(replace_err)?;
        Some(old)
    } else {
        None
    };
    if let Err(e) = fs::rename(staging.path(), target) {
        if let Some(old) = &old {
            let _ = fs::rename(old.path(), target);
        }
        return Err(replace_err(e));
    }
    // The staging folder now is the target: keep it from being deleted on drop.
    let _ = staging.keep();
    drop(old);
    Ok(())
}

/// True if `target` exists (and may be replaced), false if it does not exist yet.
fn check_target(target: &Path) -> Result<bool, OutputError> {
    let meta = match fs::symlink_metadata(target) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(OutputError::Write {
                path: target.to_owned(),
                source,
            })
        }
    };
    if !meta.is_dir() {
        return Err(OutputError::NotAFolder(target.to_owned()));
    }
    let empty = fs::read_dir(target)
        .map_err(|source| OutputError::Write {
            path: target.to_owned(),
            source,
        })?
        .next()
        .is_none();
    let ours = fs::read_to_string(target.join(KUSTOMIZATION))
        .map(|text| text.starts_with(HEADER))
        .unwrap_or(false);
    if empty || ours {
        Ok(true)
    } else {
        Err(OutputError::NotARender(target.to_owned()))
    }
}

/// Temporary folders are created 0700; a manifests folder should read like any other.
#[cfg(unix)]
fn open_permissions(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn open_permissions(_: &Path) -> io::Result<()> {
    Ok(())
}
