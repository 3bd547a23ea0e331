//! Follows the local proxies' access-log files as they grow (`tail -F` for several files at
//! once), for `tap`: each file is read from its end at the start, then every new complete line
//! is handed on. A file that is replaced or truncated (a new `up` in the same state dir) is read
//! again from its start.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};

/// How long to wait when no file grew. Envoy writes its buffered lines every 0.1 s.
const IDLE: Duration = Duration::from_millis(20);

struct Followed {
    path: PathBuf,
    file: Option<File>,
    at: u64,
    partial: Vec<u8>,
}

impl Followed {
    /// Opens the file positioned at its end (at 0 if it does not exist yet).
    fn open(path: PathBuf) -> Followed {
        let mut f = Followed {
            path,
            file: None,
            at: 0,
            partial: Vec::new(),
        };
        if let Ok(mut file) = File::open(&f.path) {
            f.at = file.seek(SeekFrom::End(0)).unwrap_or(0);
            f.file = Some(file);
        }
        f
    }

    /// Reads what was appended since the last read; returns how many bytes.
    fn read(&mut self, each: &mut dyn FnMut(&str) -> Result<()>) -> Result<usize> {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        let Some(file) = &mut self.file else {
            return Ok(0);
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.at {
            // Truncated or replaced: start over.
            self.at = 0;
            self.partial.clear();
            file.seek(SeekFrom::Start(0))?;
        }
        let mut buf = Vec::new();
        let n = file
            .read_to_end(&mut buf)
            .with_context(|| format!("reading {}", self.path.display()))?;
        self.at += n as u64;
        self.partial.extend_from_slice(&buf);
        let complete = match self.partial.iter().rposition(|b| *b == b'\n') {
            Some(end) => end + 1,
            None => return Ok(n),
        };
        let lines: Vec<u8> = self.partial.drain(..complete).collect();
        for line in String::from_utf8_lossy(&lines).lines() {
            each(line)?;
        }
        Ok(n)
    }
}

/// Follows `paths` until `stop`: a last pass after `stop` picks up what was already written.
pub(crate) fn follow(
    paths: Vec<PathBuf>,
    stop: &AtomicBool,
    ready: &mut dyn FnMut(usize),
    each: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<()> {
    let mut files: Vec<Followed> = paths.into_iter().map(Followed::open).collect();
    ready(files.len());
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut read = 0;
        for f in &mut files {
            read += f.read(each)?;
        }
        if stopping {
            return Ok(());
        }
        if read == 0 {
            std::thread::sleep(IDLE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn new_complete_lines_only_across_files_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        std::fs::write(&a, "old\n").unwrap();
        let mut files = vec![Followed::open(a.clone()), Followed::open(b.clone())];
        let mut seen = Vec::new();
        let mut each = |l: &str| {
            seen.push(l.to_owned());
            Ok(())
        };
        let mut w = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
        w.write_all(b"one\ntw").unwrap();
        std::fs::write(&b, "b1\n").unwrap();
        for f in &mut files {
            f.read(&mut each).unwrap();
        }
        w.write_all(b"o\n").unwrap();
        std::fs::write(&a, "new\n").unwrap();
        for f in &mut files {
            f.read(&mut each).unwrap();
        }
        assert_eq!(seen, ["one", "b1", "new"]);
    }

    #[test]
    fn stop_reads_once_more_and_returns() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        let stop = AtomicBool::new(true);
        let mut count = 0;
        let mut ready = |n: usize| assert_eq!(n, 1);
        follow(vec![a.clone()], &stop, &mut ready, &mut |_| {
            count += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(count, 0);
    }
}
