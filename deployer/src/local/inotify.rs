//! Linux's inotify instances, counted before a mesh starts. Each config file a local proxy is
//! given (its clusters, route tables and filters: see `xds/`) is one Envoy subscription with a
//! filesystem watcher of its own, which is one inotify instance, and Linux allows a user
//! `fs.inotify.max_user_instances` of them (128 by default) across all its processes. Past the
//! limit Envoy aborts at start-up (SIGABRT, a stack trace and no word about why), so `up` counts
//! first and says what it needs, what is left, and how to get more.

use std::path::Path;

use anyhow::{bail, Result};

const LIMIT: &str = "/proc/sys/fs/inotify/max_user_instances";

/// The proxies under `xds` (a directory each) and their config files (one per subscription):
/// the instances the mesh will hold.
pub fn needed(xds: &Path) -> (usize, usize) {
    let Ok(proxies) = std::fs::read_dir(xds) else {
        return (0, 0);
    };
    proxies
        .flatten()
        .filter_map(|p| std::fs::read_dir(p.path()).ok())
        .map(|files| {
            files
                .flatten()
                .filter(|f| f.file_type().is_ok_and(|t| t.is_file()))
                .count()
        })
        .fold((0, 0), |(proxies, files), n| (proxies + 1, files + n))
}

/// Inotify instances this user's processes hold now: fds that are `anon_inode:inotify`. Only
/// our own processes' fds are readable to a non-root user, and only they count against us.
fn in_use() -> usize {
    let uid = own_uid();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .flatten()
        .filter(|p| {
            p.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|p| uid.is_none() || owner(&p.path()) == uid)
        .filter_map(|p| std::fs::read_dir(p.path().join("fd")).ok())
        .map(|fds| {
            fds.flatten()
                .filter(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|l| l.as_os_str() == "anon_inode:inotify")
                })
                .count()
        })
        .sum()
}

/// This process's uid, from /proc (no libc call needed).
fn own_uid() -> Option<u32> {
    owner(Path::new("/proc/self"))
}

fn owner(proc_dir: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(proc_dir).ok().map(|m| m.uid())
}

/// Refuses a mesh that needs more inotify instances than the user has left. A machine without
/// the limit file (not Linux) is not checked.
pub fn check(xds: &Path) -> Result<()> {
    let Some(limit) = std::fs::read_to_string(LIMIT)
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
    else {
        return Ok(());
    };
    let (proxies, files) = needed(xds);
    verdict(files, proxies, limit, in_use())
}

/// The decision, apart from the machine: `needed` instances for `proxies` proxies, against
/// `limit` with `used` taken.
pub fn verdict(needed: usize, proxies: usize, limit: usize, used: usize) -> Result<()> {
    let left = limit.saturating_sub(used);
    if needed <= left {
        return Ok(());
    }
    // Enough for this mesh on top of what runs now, rounded up to a power of two.
    let enough = (used + needed).next_power_of_two().max(256);
    bail!(
        "this mesh's {proxies} proxies watch {needed} config files, one inotify instance each, \
         and only {left} of this user's {limit} are left ({used} in use): stop another mesh, \
         or raise the limit: sudo sysctl fs.inotify.max_user_instances={enough}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_config_file_of_every_proxy() {
        let dir = tempfile::tempdir().unwrap();
        for (proxy, files) in [("a-sidecar", 4), ("ingress-gateway", 3)] {
            let p = dir.path().join(proxy);
            std::fs::create_dir_all(&p).unwrap();
            for i in 0..files {
                std::fs::write(p.join(format!("f{i}.json")), "{}").unwrap();
            }
        }
        assert_eq!(needed(dir.path()), (2, 7));
        assert_eq!(needed(&dir.path().join("missing")), (0, 0));
    }

    #[test]
    fn refuses_past_the_limit_with_a_fix_that_fits() {
        assert!(verdict(123, 31, 128, 0).is_ok());
        assert!(verdict(128, 31, 128, 0).is_ok());
        let err = verdict(243, 61, 128, 5).unwrap_err().to_string();
        assert_eq!(
            err,
            "this mesh's 61 proxies watch 243 config files, one inotify instance each, and only \
             123 of this user's 128 are left (5 in use): stop another mesh, or raise the limit: \
             sudo sysctl fs.inotify.max_user_instances=256"
        );
        assert!(!err.contains('\n'));
        // Another mesh already holding most of them.
        let err = verdict(123, 31, 128, 100).unwrap_err().to_string();
        assert!(err.ends_with("max_user_instances=256"), "{err}");
        let err = verdict(400, 101, 512, 200).unwrap_err().to_string();
        assert!(err.ends_with("max_user_instances=1024"), "{err}");
    }

    #[test]
    fn this_machine_is_read() {
        // The count is of real fds: it is a number, and a mesh of no files always fits.
        assert!(check(Path::new("/nonexistent")).is_ok());
    }
}
