//! The initramfs of a guest: busybox, the modules, the guest's files, the
//! `/lab.sh` helpers and an `/init`, written as a cpio (newc) archive.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::error::io_err;
use super::modules::read_module;
use super::{
    Guest, Lab, LabError, EXIT_MARKER, RESERVED_GUEST_PATHS, SETUP_FAILED_MARKER, START_MARKER,
};

impl Lab {
    pub(super) fn write_initramfs(&self, guest: &Guest, path: &Path) -> Result<(), LabError> {
        let bad = |reason: String| LabError::Guest {
            guest: guest.name.clone(),
            reason,
        };
        let mut a = Archive::default();
        for d in [
            "/bin",
            "/sbin",
            "/usr/bin",
            "/usr/sbin",
            "/lib/modules/lab",
            "/proc",
            "/sys",
            "/dev",
            "/etc",
            "/tmp",
            "/run",
            "/var/run",
            "/var/tmp",
            "/root",
            "/lab",
        ] {
            a.dir(d).map_err(bad)?;
        }
        a.node("/dev/console", Node::CharDev { major: 5, minor: 1 })
            .map_err(bad)?;
        let busybox = fs::read(&self.busybox)
            .map_err(io_err(format!("reading {}", self.busybox.display())))?;
        a.node(
            "/bin/busybox",
            Node::File {
                data: busybox,
                mode: 0o755,
            },
        )
        .map_err(bad)?;
        for applet in &self.applets {
            a.node(&format!("/bin/{applet}"), Node::Symlink("busybox".into()))
                .map_err(bad)?;
        }

        let modules = self.resolve_modules(&guest.modules)?;
        for (name, file) in &modules {
            a.node(
                &format!("/lib/modules/lab/{name}.ko"),
                Node::File {
                    data: read_module(file)?,
                    mode: 0o644,
                },
            )
            .map_err(bad)?;
        }
        let names: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
        a.node(
            "/init",
            Node::File {
                data: init_script(&names).into_bytes(),
                mode: 0o755,
            },
        )
        .map_err(bad)?;
        a.node(
            "/lab.sh",
            Node::File {
                data: LAB_SH.as_bytes().to_vec(),
                mode: 0o644,
            },
        )
        .map_err(bad)?;
        a.node(
            "/lab/scenario.sh",
            Node::File {
                data: guest.script.clone().into_bytes(),
                mode: 0o755,
            },
        )
        .map_err(bad)?;

        for (host, guest_path) in &guest.files {
            if !guest_path.starts_with('/') {
                return Err(bad(format!("guest path {guest_path} is not absolute")));
            }
            let clean = guest_path.trim_end_matches('/');
            if RESERVED_GUEST_PATHS
                .iter()
                .any(|r| clean == *r || clean.starts_with(&format!("{r}/")))
            {
                return Err(bad(format!(
                    "guest path {guest_path} is reserved by the lab"
                )));
            }
            let meta =
                fs::metadata(host).map_err(io_err(format!("guest file {}", host.display())))?;
            let data =
                fs::read(host).map_err(io_err(format!("reading guest file {}", host.display())))?;
            a.node(
                clean,
                Node::File {
                    data,
                    mode: meta.permissions().mode() & 0o7777,
                },
            )
            .map_err(bad)?;
        }

        let f = fs::File::create(path).map_err(io_err(format!("creating {}", path.display())))?;
        let mut w = BufWriter::new(f);
        a.write_newc(&mut w)
            .map_err(io_err(format!("writing {}", path.display())))?;
        w.flush()
            .map_err(io_err(format!("writing {}", path.display())))
    }
}

/// The helper library at `/lab.sh`.
const LAB_SH: &str = r#"# stas lab helpers (tests/src/lab/initramfs.rs). Source with: . /lab.sh

# lab_tag KEY TEXT...: print "@@KEY TEXT" (GuestRun::tagged on the host).
lab_tag() {
    local key="$1"; shift
    echo "@@$key $*"
}

# lab_put NAME FILE: send FILE to the host as "@@blob NAME <base64>" (GuestRun::blob).
lab_put() {
    if [ ! -r "$2" ]; then
        echo "lab_put: cannot read $2" >&2
        return 1
    fi
    printf '@@blob %s ' "$1"
    base64 -w 0 < "$2"
    echo
}

# lab_check NAME CMD...: run CMD, print "@@check NAME ok" or "@@check NAME fail RC";
# returns CMD's status.
lab_check() {
    local name="$1"; shift
    local rc=0
    "$@" || rc=$?
    if [ "$rc" -eq 0 ]; then echo "@@check $name ok"; else echo "@@check $name fail $rc"; fi
    return "$rc"
}

# lab_wait_for SECONDS CMD...: retry CMD every 0.1 s until it succeeds (0) or SECONDS pass (1).
lab_wait_for() {
    local tenths=$(($1 * 10)); shift
    until "$@"; do
        tenths=$((tenths - 1))
        [ "$tenths" -gt 0 ] || return 1
        sleep 0.1
    done
}
"#;

fn init_script(modules: &[&str]) -> String {
    format!(
        r#"#!/bin/sh
# /init of a stas lab guest (generated by tests/src/lab/initramfs.rs).
# ttyS0 (our stdout) is the kernel console; the scenario writes to ttyS1.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
stty -F /dev/ttyS1 raw -echo 2>/dev/null
fail() {{
    echo "{setup_failed}$*" > /dev/ttyS1
    echo "{setup_failed}$*"
    poweroff -f
}}
for m in {modules}; do
    insmod /lib/modules/lab/$m.ko || fail "insmod $m"
done
mount -t configfs configfs /sys/kernel/config || fail "mount configfs"
ip link set lo up || fail "ip link set lo up"
hostname lab
cd /
echo "{start}" > /dev/ttyS1
sh /lab/scenario.sh > /dev/ttyS1 2>&1 < /dev/null
rc=$?
# Nothing else may hold ttyS1 open: the last close waits until it is drained.
kill -9 -1 2>/dev/null
sleep 0.05
printf '\n{exit}%s\n' "$rc" > /dev/ttyS1
echo "{exit}$rc"
poweroff -f
"#,
        setup_failed = SETUP_FAILED_MARKER,
        modules = modules.join(" "),
        start = START_MARKER,
        exit = EXIT_MARKER,
    )
}

#[derive(Debug)]
enum Node {
    Dir,
    File { data: Vec<u8>, mode: u32 },
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

/// An initramfs being built: absolute guest path -> node. Parents sort before
/// their children, so writing in key order creates directories first.
#[derive(Debug, Default)]
struct Archive {
    nodes: BTreeMap<String, Node>,
}

impl Archive {
    fn dir(&mut self, path: &str) -> Result<(), String> {
        self.parents(path)?;
        match self.nodes.get(path) {
            None => {
                self.nodes.insert(path.to_owned(), Node::Dir);
                Ok(())
            }
            Some(Node::Dir) => Ok(()),
            Some(_) => Err(format!("{path} is both a file and a directory")),
        }
    }

    fn parents(&mut self, path: &str) -> Result<(), String> {
        if !path.starts_with('/') || path.len() < 2 || path.ends_with('/') || path.contains("//") {
            return Err(format!("bad guest path {path:?}"));
        }
        if path.split('/').any(|c| c == "." || c == "..") {
            return Err(format!("guest path {path:?} has . or .. in it"));
        }
        match path.rfind('/') {
            Some(0) | None => Ok(()),
            Some(i) => self.dir(path.get(..i).unwrap_or_default()),
        }
    }

    /// Adds a file, symlink or device, replacing a file or symlink of that path.
    fn node(&mut self, path: &str, node: Node) -> Result<(), String> {
        self.parents(path)?;
        if let Some(Node::Dir) = self.nodes.get(path) {
            return Err(format!("{path} is both a directory and a file"));
        }
        self.nodes.insert(path.to_owned(), node);
        Ok(())
    }

    fn write_newc(&self, w: &mut impl Write) -> io::Result<()> {
        const S_IFDIR: u32 = 0o040_000;
        const S_IFREG: u32 = 0o100_000;
        const S_IFLNK: u32 = 0o120_000;
        const S_IFCHR: u32 = 0o020_000;
        let mut ino: u32 = 1;
        for (path, node) in &self.nodes {
            ino = ino.saturating_add(1);
            let name = path.trim_start_matches('/');
            let (mode, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match node {
                Node::Dir => (S_IFDIR | 0o755, 2, &[], (0, 0)),
                Node::File { data, mode } => (S_IFREG | (mode & 0o7777), 1, data, (0, 0)),
                Node::Symlink(target) => (S_IFLNK | 0o777, 1, target.as_bytes(), (0, 0)),
                Node::CharDev { major, minor } => (S_IFCHR | 0o600, 1, &[], (*major, *minor)),
            };
            newc_entry(w, ino, mode, nlink, rdev, name, data)?;
        }
        newc_entry(w, 0, 0, 1, (0, 0), "TRAILER!!!", &[])
    }
}

fn newc_entry(
    w: &mut impl Write,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    name: &str,
    data: &[u8],
) -> io::Result<()> {
    let too_big = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} too large for cpio: {name}"),
        )
    };
    let size = u32::try_from(data.len()).map_err(|_| too_big("file"))?;
    let namesize = u32::try_from(name.len() + 1).map_err(|_| too_big("name"))?;
    let header = format!(
        "070701{ino:08X}{mode:08X}{:08X}{:08X}{nlink:08X}{:08X}{size:08X}{:08X}{:08X}{:08X}{:08X}{namesize:08X}{:08X}",
        0, 0, 0, 0, 0, rdev.0, rdev.1, 0
    );
    w.write_all(header.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    w.write_all(&[0u8; 3][..pad4(header.len() + name.len() + 1)])?;
    w.write_all(data)?;
    w.write_all(&[0u8; 3][..pad4(data.len())])
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_creates_parents_and_rejects_conflicts() {
        let mut a = Archive::default();
        a.node(
            "/usr/sbin/nvme",
            Node::File {
                data: b"x".to_vec(),
                mode: 0o755,
            },
        )
        .unwrap();
        assert!(matches!(a.nodes.get("/usr"), Some(Node::Dir)));
        assert!(matches!(a.nodes.get("/usr/sbin"), Some(Node::Dir)));
        assert!(a.dir("/usr/sbin/nvme").is_err());
        assert!(a.node("/usr/sbin/nvme/x", Node::Dir).is_err());
        assert!(a.node("relative", Node::Dir).is_err());
        assert!(a.node("/a/../b", Node::Dir).is_err());
        let mut out = Vec::new();
        a.write_newc(&mut out).unwrap();
        assert_eq!(out.len() % 4, 0);
        assert!(out.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("usr/sbin/nvme\0"));
        assert!(text.contains("TRAILER!!!\0"));
    }
}
