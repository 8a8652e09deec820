//! The lab: a throwaway QEMU guest with a real NVMe-oF kernel.
//!
//! The build machines run a kernel without NVMe support, so code that talks to
//! `/dev/nvme-fabrics`, `/dev/nvmeX` or `/sys/class/nvme` is proven in a guest
//! booting Debian's cloud kernel, which ships the NVMe/TCP host (`nvme-fabrics`,
//! `nvme-tcp`) and the kernel target (`nvmet`, `nvmet-tcp`) as modules.
//!
//! [`Lab::prepare`] finds QEMU and a static busybox on the host and fetches the
//! kernel (`apt-get download` of whatever `linux-image-cloud-amd64` depends on
//! today, extracted once into the cache). [`Lab::run`] builds an initramfs
//! (busybox, the modules, the [`Guest`]'s files, `/lab.sh` and an `/init`),
//! boots it under TCG, runs the guest's script as root and returns what it
//! printed as a [`GuestRun`].
//!
//! The guest has two serial ports: `ttyS0` is the kernel console (boot
//! messages, kernel errors, `/init`'s own messages), `ttyS1` carries the
//! scenario's stdout and stderr only, so kernel messages never land in the
//! middle of a scenario's line. Both go into `logs/<name>.log` under the cache.
//!
//! Inside the guest, `. /lab.sh` gives the scenario these helpers:
//!
//! - `lab_tag KEY TEXT...` prints `@@KEY TEXT` (read back with [`GuestRun::tagged`]);
//! - `lab_check NAME CMD...` runs CMD and prints `@@check NAME ok` or
//!   `@@check NAME fail RC` (see [`GuestRun::checks`]); returns CMD's status;
//! - `lab_put NAME FILE` prints `@@blob NAME <base64>` (see [`GuestRun::blob`]);
//! - `lab_wait_for SECONDS CMD...` retries CMD every 0.1 s until it succeeds.
//!
//! Environment: `STAS_LAB_CACHE` (cache directory, default
//! `$HOME/.cache/stas-lab`), `STAS_SKIP_LAB=1` (see [`skip_requested`]).
//!
//! The code is laid out by what it does: [`Lab::prepare`] here, the kernel
//! and host tools in `kernel`, its modules in `modules`, ELF reading in `elf`,
//! the initramfs in `initramfs`, a boot in `qemu`, [`Guest`] and [`GuestRun`]
//! in `guest`, static builds and host binaries in `host`, [`LabError`] in
//! `error`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod elf;
mod error;
mod guest;
mod host;
mod initramfs;
mod kernel;
mod modules;
mod qemu;
mod util;

pub use elf::elf_interpreter;
pub use error::LabError;
pub use guest::{Check, Guest, GuestRun};
pub use host::{build_static, host_binary_with_libs, workspace_root};
pub use kernel::which;

use error::io_err;
use kernel::{
    busybox_applets, cache_dir, ensure_kernel, find_modules_dir, find_static_busybox, find_vmlinuz,
};
use modules::ModuleIndex;
use util::sanitize;

/// The meta package whose first `linux-image-…` dependency is the kernel the lab boots.
pub const KERNEL_META_PACKAGE: &str = "linux-image-cloud-amd64";

/// Modules every guest loads, in this order (plus their dependencies).
pub const DEFAULT_MODULES: &[&str] =
    &["configfs", "nvmet", "nvmet-tcp", "nvme-fabrics", "nvme-tcp"];

/// The Rust target [`build_static`] builds for.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

const START_MARKER: &str = "stas-lab: guest-start";
const EXIT_MARKER: &str = "stas-lab: guest-exit=";
const SETUP_FAILED_MARKER: &str = "stas-lab: setup-failed ";
/// Guest paths the lab writes itself; a [`Guest`] may not replace them.
const RESERVED_GUEST_PATHS: &[&str] = &["/init", "/lab.sh", "/lab"];

/// True (after printing why) when `STAS_SKIP_LAB=1` asks lab tests to be
/// skipped. Lab tests call this first and return early when it is true;
/// otherwise a missing QEMU or kernel makes them fail with the reason.
pub fn skip_requested(test: &str) -> bool {
    match std::env::var("STAS_SKIP_LAB") {
        Ok(v) if v == "1" => {
            notice(&format!(
                "lab test {test} skipped: STAS_SKIP_LAB=1 is set (the QEMU lab was not started)"
            ));
            true
        }
        _ => false,
    }
}

/// Prints a line on stderr past the test harness's output capture, so that it
/// shows even for a passing test.
fn notice(line: &str) {
    let _ = writeln!(io::stderr(), "{line}");
}

/// Everything a boot needs, found or fetched once by [`Lab::prepare`].
#[derive(Debug, Clone)]
pub struct Lab {
    cache_dir: PathBuf,
    kernel_package: String,
    kernel: PathBuf,
    kernel_release: String,
    modules_dir: PathBuf,
    busybox: PathBuf,
    applets: Vec<String>,
    qemu: PathBuf,
    modules: Arc<ModuleIndex>,
}

static PREPARED: Mutex<Option<Lab>> = Mutex::new(None);

impl Lab {
    /// Finds or fetches everything a boot needs: `qemu-system-x86_64`, a static
    /// busybox, and the cloud kernel with its modules (downloaded and extracted
    /// into the cache on first use, reused afterwards). Safe to call from many
    /// threads (the work is done once per process) and many processes (the
    /// extraction is published with an atomic rename).
    pub fn prepare() -> Result<Lab, LabError> {
        let mut slot = PREPARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(lab) = slot.as_ref() {
            return Ok(lab.clone());
        }
        let lab = Self::prepare_uncached()?;
        *slot = Some(lab.clone());
        Ok(lab)
    }

    fn prepare_uncached() -> Result<Lab, LabError> {
        let qemu = which("qemu-system-x86_64").ok_or_else(|| LabError::MissingTool {
            tool: "qemu-system-x86_64".into(),
            hint: "apt-get install qemu-system-x86 (scripts/test installs it)".into(),
        })?;
        let busybox = find_static_busybox()?;
        let applets = busybox_applets(&busybox)?;
        let cache_dir = cache_dir();
        fs::create_dir_all(&cache_dir).map_err(io_err(format!(
            "creating the lab cache {}",
            cache_dir.display()
        )))?;
        let (kernel_package, root) = ensure_kernel(&cache_dir)?;
        let kernel = find_vmlinuz(&root)?;
        let (kernel_release, modules_dir) = find_modules_dir(&root)?;
        let modules = Arc::new(ModuleIndex::load(&modules_dir)?);
        Ok(Lab {
            cache_dir,
            kernel_package,
            kernel,
            kernel_release,
            modules_dir,
            busybox,
            applets,
            qemu,
            modules,
        })
    }

    /// The cache directory (`$STAS_LAB_CACHE`, else `$HOME/.cache/stas-lab`).
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The kernel image booted.
    pub fn kernel(&self) -> &Path {
        &self.kernel
    }

    /// The Debian package the kernel came from (e.g. `linux-image-6.1.0-56-cloud-amd64`).
    pub fn kernel_package(&self) -> &str {
        &self.kernel_package
    }

    /// The kernel release (`uname -r` in the guest).
    pub fn kernel_release(&self) -> &str {
        &self.kernel_release
    }

    /// The kernel's `lib/modules/<release>` directory.
    pub fn modules_dir(&self) -> &Path {
        &self.modules_dir
    }

    /// The static busybox put into every guest.
    pub fn busybox(&self) -> &Path {
        &self.busybox
    }

    /// Where the raw console log of the last run of guest `name` is kept.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.cache_dir
            .join("logs")
            .join(format!("{}.log", sanitize(name)))
    }

    /// The modules a guest asking for `extra` loads, dependencies first, built-in
    /// ones left out, as (name, file) pairs.
    pub fn resolve_modules(&self, extra: &[String]) -> Result<Vec<(String, PathBuf)>, LabError> {
        let wanted: Vec<&str> = DEFAULT_MODULES
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
            .collect();
        self.modules.resolve(&wanted)
    }
}
