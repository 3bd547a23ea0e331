//! Size and initial linear memory of a Wasm module, read from its bytes (the same figures
//! `scripts/wasm-size.py` prints): every sidecar pays these per VM before any request.

use std::path::Path;

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleSize {
    pub bytes: u64,
    /// Initial pages (64 KiB each) of the module's own or imported memory.
    pub initial_pages: u64,
}

impl ModuleSize {
    pub fn initial_memory_kib(&self) -> u64 {
        self.initial_pages * 64
    }
}

pub fn measure(path: &Path) -> Result<ModuleSize> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let pages = initial_pages(&data).with_context(|| format!("parsing {}", path.display()))?;
    Ok(ModuleSize {
        bytes: data.len() as u64,
        initial_pages: pages,
    })
}

/// Reads an unsigned LEB128 at `*i`, advancing it.
fn leb(data: &[u8], i: &mut usize) -> Result<u64> {
    let mut result = 0u64;
    let mut shift = 0;
    loop {
        let byte = *data.get(*i).context("truncated LEB128")?;
        *i += 1;
        result |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(result);
        }
        shift += 7;
        if shift > 63 {
            bail!("LEB128 too long");
        }
    }
}

/// Limits: flags, then the minimum (the initial size), then an optional maximum.
fn limits_min(data: &[u8], i: &mut usize) -> Result<u64> {
    let _flags = leb(data, i)?;
    leb(data, i)
}

fn name(data: &[u8], i: &mut usize) -> Result<()> {
    let len = usize::try_from(leb(data, i)?)?;
    *i += len;
    Ok(())
}

/// Walks the sections for the memory section (id 5) or a memory import (section 2, kind 2).
fn initial_pages(data: &[u8]) -> Result<u64> {
    if data.get(..4) != Some(b"\0asm") {
        bail!("not a wasm module");
    }
    let mut i = 8;
    while i < data.len() {
        let id = data[i];
        i += 1;
        let size = usize::try_from(leb(data, &mut i)?)?;
        let end = i + size;
        match id {
            5 => {
                let mut j = i;
                let count = leb(data, &mut j)?;
                if count > 0 {
                    return limits_min(data, &mut j);
                }
            }
            2 => {
                let mut j = i;
                for _ in 0..leb(data, &mut j)? {
                    name(data, &mut j)?;
                    name(data, &mut j)?;
                    let kind = *data.get(j).context("truncated import")?;
                    j += 1;
                    match kind {
                        0 => {
                            leb(data, &mut j)?;
                        }
                        1 => {
                            j += 1; // reftype
                            let flags = leb(data, &mut j)?;
                            leb(data, &mut j)?;
                            if flags & 1 == 1 {
                                leb(data, &mut j)?;
                            }
                        }
                        2 => return limits_min(data, &mut j),
                        3 => j += 2, // valtype, mutability
                        _ => bail!("unknown import kind {kind}"),
                    }
                }
            }
            _ => {}
        }
        i = end;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_memory_section() {
        // Header, then section 5 of 3 bytes: one memory, flags 0, min 17 pages.
        let module = [0, b'a', b's', b'm', 1, 0, 0, 0, 5, 3, 1, 0, 17];
        assert_eq!(initial_pages(&module).unwrap(), 17);
    }

    #[test]
    fn reads_an_imported_memory() {
        // Section 2: one import "e"."m", kind memory, flags 1, min 2, max 9.
        let module = [
            0, b'a', b's', b'm', 1, 0, 0, 0, 2, 9, 1, 1, b'e', 1, b'm', 2, 1, 2, 9,
        ];
        assert_eq!(initial_pages(&module).unwrap(), 2);
    }

    #[test]
    fn refuses_other_files() {
        assert!(initial_pages(b"not wasm").is_err());
    }
}
