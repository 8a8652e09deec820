//! Just enough ELF: the program interpreter of an executable (static or
//! not) and the `.modinfo` of a kernel module.

use std::fs;
use std::path::Path;

use super::error::io_err;
use super::LabError;

fn le_u16(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        d.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn le_u32(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn le_u64(d: &[u8], off: usize) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(
        d.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
    .ok()
}

fn check_elf64le(d: &[u8]) -> Result<(), String> {
    if d.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("not an ELF file".into());
    }
    if d.get(4) != Some(&2) || d.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    Ok(())
}

/// The program interpreter (`PT_INTERP`) an ELF executable asks for; `None` for
/// a static executable (static-pie included).
pub fn elf_interpreter(path: &Path) -> Result<Option<String>, LabError> {
    let d = fs::read(path).map_err(io_err(format!("reading {}", path.display())))?;
    elf_interpreter_of(&d).map_err(|reason| LabError::Elf {
        path: path.to_path_buf(),
        reason,
    })
}

fn elf_interpreter_of(d: &[u8]) -> Result<Option<String>, String> {
    const PT_INTERP: u32 = 3;
    check_elf64le(d)?;
    let bad = || "truncated ELF program headers".to_owned();
    let phoff = le_u64(d, 0x20).ok_or_else(bad)?;
    let phentsize = usize::from(le_u16(d, 0x36).ok_or_else(bad)?);
    let phnum = usize::from(le_u16(d, 0x38).ok_or_else(bad)?);
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i.checked_mul(phentsize).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        if le_u32(d, ph).ok_or_else(bad)? == PT_INTERP {
            let off = le_u64(d, ph + 8).ok_or_else(bad)?;
            let size = le_u64(d, ph + 32).ok_or_else(bad)?;
            let raw = d
                .get(off..off.checked_add(size).ok_or_else(bad)?)
                .ok_or_else(bad)?;
            let s = String::from_utf8_lossy(raw)
                .trim_end_matches('\0')
                .to_owned();
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// The value of `key=` in a kernel module's `.modinfo` section.
pub(super) fn modinfo(d: &[u8], key: &str) -> Result<Option<String>, String> {
    check_elf64le(d)?;
    let bad = || "truncated ELF section headers".to_owned();
    let shoff = le_u64(d, 0x28).ok_or_else(bad)?;
    let shentsize = usize::from(le_u16(d, 0x3a).ok_or_else(bad)?);
    let shnum = usize::from(le_u16(d, 0x3c).ok_or_else(bad)?);
    let shstrndx = usize::from(le_u16(d, 0x3e).ok_or_else(bad)?);
    let section = |i: usize| -> Option<(usize, usize, usize)> {
        let sh = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let name = usize::try_from(le_u32(d, sh)?).ok()?;
        Some((
            name,
            le_u64(d, sh.checked_add(24)?)?,
            le_u64(d, sh.checked_add(32)?)?,
        ))
    };
    let (_, str_off, str_size) = section(shstrndx).ok_or_else(bad)?;
    let strtab = d
        .get(str_off..str_off.checked_add(str_size).ok_or_else(bad)?)
        .ok_or_else(bad)?;
    for i in 0..shnum {
        let (name, off, size) = section(i).ok_or_else(bad)?;
        let sname = strtab
            .get(name..)
            .and_then(|s| s.split(|b| *b == 0).next())
            .unwrap_or_default();
        if sname != b".modinfo" {
            continue;
        }
        let body = d
            .get(off..off.checked_add(size).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        let prefix = format!("{key}=");
        return Ok(body
            .split(|b| *b == 0)
            .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))
            .map(|v| String::from_utf8_lossy(v).into_owned()));
    }
    Err("no .modinfo section (not a kernel module?)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_test_binary_is_dynamic() {
        let exe = std::env::current_exe().unwrap();
        assert!(elf_interpreter(&exe).unwrap().is_some());
    }
}
