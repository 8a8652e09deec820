//! Admin commands through `NVME_IOCTL_ADMIN_CMD` on `/dev/nvmeN`
//! (docs/kernel-interface.md §2, §3): Get Log Page in 4 KiB chunks with the GENCTR
//! protocol for the discovery log, Identify Controller, Supported Log Pages
//! and DIM.
//!
//! The protocol logic is written against [`AdminTransport`], so it runs
//! against a fake controller in tests; [`NvmeDevice`] is the real one.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::errno::Errno;
use nvmf_proto::dim::{DimData, Tas, OPC_DIM};
use nvmf_proto::dlp::{
    DiscoveryLogHeader, DiscoveryLogPage, ENTRY_LEN, HEADER_LEN, HEADER_PREFIX_LEN,
};
use nvmf_proto::identify::{IdentifyController, IDENTIFY_LEN};
use nvmf_proto::logpages::{
    GetLogPage, SupportedLogPages, LID_DISCOVERY, LID_SUPPORTED_LOG_PAGES, OPC_GET_LOG_PAGE,
    SUPPORTED_LOG_PAGES_LEN,
};

use crate::{KernelError, NvmeStatus};

/// Admin opcode of Identify.
pub const OPC_IDENTIFY: u8 = 0x06;

/// Direction and buffer of an admin command's data.
#[derive(Debug)]
pub enum Data<'a> {
    /// No data.
    None,
    /// Controller to host (Get Log Page, Identify).
    FromDevice(&'a mut [u8]),
    /// Host to controller (DIM).
    ToDevice(&'a [u8]),
}

/// One admin command.
#[derive(Debug)]
pub struct AdminCommand<'a> {
    /// Opcode.
    pub opcode: u8,
    /// Namespace id.
    pub nsid: u32,
    /// Command dwords 10 to 15.
    pub cdw: [u32; 6],
    /// Data buffer.
    pub data: Data<'a>,
    /// Timeout in ms; 0 uses the kernel's admin timeout (60 s). A timeout
    /// resets a fabrics controller, so short ones do more harm than good.
    pub timeout_ms: u32,
    /// Human name for errors, e.g. `get log page 0x70`.
    pub name: String,
}

/// How an admin command failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminFailure {
    /// The controller answered with an error status.
    Status(NvmeStatus),
    /// The kernel failed the command (e.g. EINTR after a reset).
    Errno(Errno),
}

/// Something that executes admin commands: a controller's char device, or a fake.
pub trait AdminTransport {
    /// The controller's name for messages (`nvme0`).
    fn device_name(&self) -> &str;
    /// Executes `cmd`; returns completion dword 0.
    fn submit(&mut self, cmd: &mut AdminCommand<'_>) -> Result<u32, AdminFailure>;
}

fn fail(device: &str, command: &str, f: AdminFailure) -> KernelError {
    match f {
        AdminFailure::Status(status) => KernelError::Nvme {
            command: command.to_owned(),
            device: device.to_owned(),
            status,
        },
        AdminFailure::Errno(errno) => KernelError::Ioctl {
            command: command.to_owned(),
            device: device.to_owned(),
            errno,
        },
    }
}

/// Reads `buf.len()` bytes of log `lid` at `offset` in 4 KiB commands, RAE
/// set on all but the last one, which uses `rae`.
pub fn get_log_page<T: AdminTransport + ?Sized>(
    t: &mut T,
    lid: u8,
    lsp: u8,
    nsid: u32,
    offset: u64,
    buf: &mut [u8],
    rae: bool,
) -> Result<(), AdminFailure> {
    let len = u32::try_from(buf.len()).map_err(|_| AdminFailure::Errno(Errno::EINVAL))?;
    let whole = GetLogPage {
        lid,
        lsp,
        offset,
        len,
        ..Default::default()
    };
    let mut done = 0usize;
    for chunk in whole.chunked(rae) {
        let cdws = chunk
            .cdws()
            .map_err(|_| AdminFailure::Errno(Errno::EINVAL))?;
        let n = usize::try_from(chunk.len).map_err(|_| AdminFailure::Errno(Errno::EINVAL))?;
        let end = done.saturating_add(n);
        let part = buf
            .get_mut(done..end)
            .ok_or(AdminFailure::Errno(Errno::EINVAL))?;
        let [c10, c11, c12, c13, c14] = cdws;
        let mut cmd = AdminCommand {
            opcode: OPC_GET_LOG_PAGE,
            nsid,
            cdw: [c10, c11, c12, c13, c14, 0],
            data: Data::FromDevice(part),
            timeout_ms: 0,
            name: format!("get log page {lid:#04x}"),
        };
        t.submit(&mut cmd)?;
        done = end;
    }
    Ok(())
}

/// A discovery log read consistently, and how it went.
#[derive(Debug, Clone)]
pub struct DiscoveryLog {
    /// The raw bytes: header and NUMREC entries.
    pub raw: Vec<u8>,
    /// The parsed page.
    pub page: DiscoveryLogPage,
    /// Rounds needed (1 when nothing changed during the read).
    pub rounds: u32,
}

/// Limits of [`read_discovery_log`].
#[derive(Debug, Clone, Copy)]
pub struct DiscoveryLogLimits {
    /// Rounds before giving up on a log that keeps changing (libnvme: 6).
    pub max_rounds: u32,
    /// Most entries accepted: a peer announcing more is refused rather than
    /// letting it size our allocation.
    pub max_entries: u64,
}

impl Default for DiscoveryLogLimits {
    fn default() -> Self {
        Self {
            max_rounds: 6,
            max_entries: 16_384,
        }
    }
}

fn read_header<T: AdminTransport + ?Sized>(
    t: &mut T,
    lsp: u8,
) -> Result<DiscoveryLogHeader, KernelError> {
    let mut h = [0u8; HEADER_PREFIX_LEN];
    get_log_page(t, LID_DISCOVERY, lsp, 0, 0, &mut h, false)
        .map_err(|f| fail(t.device_name(), "get log page 0x70 (header)", f))?;
    DiscoveryLogHeader::parse(&h).map_err(|source| KernelError::Proto {
        what: format!("discovery log header of {}", t.device_name()),
        source,
    })
}

/// Reads the discovery log page with the GENCTR protocol (docs/kernel-interface.md
/// §4.4): header, entries, header again; if GENCTR moved, go round again, up
/// to `limits.max_rounds`. A "Discover Restart" status also starts a new
/// round, and so do a NUMREC that changed between the two headers and an
/// "invalid field" answer to the entries read (the page shrank under us):
/// re-reading at once beats waiting for the caller's retry timer. The last
/// command of a round has RAE clear, which re-arms the controller's
/// Discovery Log Page Change event.
pub fn read_discovery_log<T: AdminTransport + ?Sized>(
    t: &mut T,
    lsp: u8,
    limits: DiscoveryLogLimits,
) -> Result<DiscoveryLog, KernelError> {
    let mut header = read_header(t, lsp)?;
    let mut rounds = 0u32;
    loop {
        rounds = rounds.saturating_add(1);
        if header.numrec > limits.max_entries {
            return Err(KernelError::LogTooLarge {
                device: t.device_name().to_owned(),
                numrec: header.numrec,
                limit: limits.max_entries,
            });
        }
        let count = usize::try_from(header.numrec).unwrap_or(usize::MAX);
        let mut raw = vec![0u8; HEADER_LEN.saturating_add(count.saturating_mul(ENTRY_LEN))];
        if count > 0 {
            let entries = raw.get_mut(HEADER_LEN..).unwrap_or_default();
            match get_log_page(t, LID_DISCOVERY, lsp, 0, HEADER_LEN as u64, entries, false) {
                Ok(()) => {}
                // Discover Restart, or "invalid field" because the page
                // shrank below the length we asked for: read it afresh.
                Err(AdminFailure::Status(s))
                    if (s.is_discover_restart() || s.code() == 0x002)
                        && rounds < limits.max_rounds =>
                {
                    header = read_header(t, lsp)?;
                    continue;
                }
                Err(f) => return Err(fail(t.device_name(), "get log page 0x70 (entries)", f)),
            }
        }
        let after = read_header(t, lsp)?;
        if after.genctr != header.genctr {
            if rounds >= limits.max_rounds {
                return Err(KernelError::GenctrChurn {
                    device: t.device_name().to_owned(),
                    attempts: rounds,
                });
            }
            header = after;
            continue;
        }
        if after.numrec != header.numrec {
            // The page changed under us without a new GENCTR (some targets
            // do that): another round, at once.
            if rounds < limits.max_rounds {
                header = after;
                continue;
            }
            return Err(KernelError::NumrecChanged {
                device: t.device_name().to_owned(),
                before: header.numrec,
                after: after.numrec,
            });
        }
        let first = raw.get_mut(..HEADER_LEN).unwrap_or_default();
        first.copy_from_slice(&header.emit());
        let page = DiscoveryLogPage::parse(&raw).map_err(|source| KernelError::Proto {
            what: format!("discovery log of {}", t.device_name()),
            source,
        })?;
        return Ok(DiscoveryLog { raw, page, rounds });
    }
}

/// Identify Controller (CNS 1), raw bytes and parsed.
pub fn identify_controller<T: AdminTransport + ?Sized>(
    t: &mut T,
) -> Result<(Vec<u8>, IdentifyController), KernelError> {
    let mut buf = vec![0u8; IDENTIFY_LEN];
    let mut cmd = AdminCommand {
        opcode: OPC_IDENTIFY,
        nsid: 0,
        cdw: [1, 0, 0, 0, 0, 0],
        data: Data::FromDevice(&mut buf),
        timeout_ms: 0,
        name: "identify controller".into(),
    };
    t.submit(&mut cmd)
        .map_err(|f| fail(t.device_name(), "identify controller", f))?;
    let id = IdentifyController::parse(&buf).map_err(|source| KernelError::Proto {
        what: format!("identify controller data of {}", t.device_name()),
        source,
    })?;
    Ok((buf, id))
}

/// The Supported Log Pages log page (LID 0x00), read with RAE set so it
/// does not clear a pending event.
pub fn supported_log_pages<T: AdminTransport + ?Sized>(
    t: &mut T,
) -> Result<SupportedLogPages, KernelError> {
    let mut buf = vec![0u8; SUPPORTED_LOG_PAGES_LEN];
    get_log_page(
        t,
        LID_SUPPORTED_LOG_PAGES,
        0,
        0xffff_ffff,
        0,
        &mut buf,
        true,
    )
    .map_err(|f| {
        fail(
            t.device_name(),
            "get log page 0x00 (supported log pages)",
            f,
        )
    })?;
    SupportedLogPages::parse(&buf).map_err(|source| KernelError::Proto {
        what: format!("supported log pages of {}", t.device_name()),
        source,
    })
}

/// Sends a DIM command (TP8010 registration); returns completion dword 0.
pub fn send_dim<T: AdminTransport + ?Sized>(
    t: &mut T,
    tas: Tas,
    data: &DimData,
) -> Result<u32, KernelError> {
    let payload = data.emit().map_err(|source| KernelError::Proto {
        what: "DIM payload".into(),
        source,
    })?;
    let mut cmd = AdminCommand {
        opcode: OPC_DIM,
        nsid: 0,
        cdw: [tas.cdw10(), 0, 0, 0, 0, 0],
        data: Data::ToDevice(&payload),
        timeout_ms: 0,
        name: "discovery information management".into(),
    };
    t.submit(&mut cmd)
        .map_err(|f| fail(t.device_name(), "discovery information management", f))
}

/// `struct nvme_passthru_cmd` (72 bytes, kernel uapi).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct PassthruCmd {
    /// Opcode.
    pub opcode: u8,
    /// Must be 0.
    pub flags: u8,
    /// Reserved.
    pub rsvd1: u16,
    /// Namespace id.
    pub nsid: u32,
    /// Command dword 2.
    pub cdw2: u32,
    /// Command dword 3.
    pub cdw3: u32,
    /// Metadata pointer (unused).
    pub metadata: u64,
    /// Data pointer.
    pub addr: u64,
    /// Metadata length (unused).
    pub metadata_len: u32,
    /// Data length in bytes.
    pub data_len: u32,
    /// Command dwords 10 to 15.
    pub cdw10: u32,
    /// Command dword 11.
    pub cdw11: u32,
    /// Command dword 12.
    pub cdw12: u32,
    /// Command dword 13.
    pub cdw13: u32,
    /// Command dword 14.
    pub cdw14: u32,
    /// Command dword 15.
    pub cdw15: u32,
    /// Timeout in ms.
    pub timeout_ms: u32,
    /// Out: completion dword 0.
    pub result: u32,
}

const _: () = assert!(std::mem::size_of::<PassthruCmd>() == 72);

nix::ioctl_readwrite!(nvme_ioctl_admin_cmd, b'N', 0x41, PassthruCmd);

/// A controller's admin character device (`/dev/nvmeN`), opened.
#[derive(Debug)]
pub struct NvmeDevice {
    file: File,
    name: String,
}

impl NvmeDevice {
    /// Opens `path` (e.g. `/dev/nvme0`). Fails with EWOULDBLOCK while the
    /// controller is not live.
    pub fn open(path: &Path) -> Result<Self, KernelError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| KernelError::io("open", path, e))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(Self { file, name })
    }
}

impl AdminTransport for NvmeDevice {
    fn device_name(&self) -> &str {
        &self.name
    }

    fn submit(&mut self, cmd: &mut AdminCommand<'_>) -> Result<u32, AdminFailure> {
        let (addr, len) = match &mut cmd.data {
            Data::None => (0u64, 0usize),
            Data::FromDevice(b) => (b.as_mut_ptr() as u64, b.len()),
            Data::ToDevice(b) => (b.as_ptr() as u64, b.len()),
        };
        let [cdw10, cdw11, cdw12, cdw13, cdw14, cdw15] = cmd.cdw;
        let mut raw = PassthruCmd {
            opcode: cmd.opcode,
            nsid: cmd.nsid,
            addr,
            data_len: u32::try_from(len).map_err(|_| AdminFailure::Errno(Errno::EINVAL))?,
            cdw10,
            cdw11,
            cdw12,
            cdw13,
            cdw14,
            cdw15,
            timeout_ms: cmd.timeout_ms,
            ..PassthruCmd::default()
        };
        // SAFETY: `raw` is a valid, exclusively borrowed `nvme_passthru_cmd`
        // for the duration of the call, and `addr`/`data_len` describe a
        // buffer borrowed from `cmd.data` that outlives the call; for
        // FromDevice it is a unique mutable borrow, so the kernel's write
        // aliases nothing, and for ToDevice the opcode's direction bit makes
        // the kernel only read it.
        let ret = unsafe { nvme_ioctl_admin_cmd(self.file.as_raw_fd(), &mut raw) };
        match ret {
            Ok(0) => Ok(raw.result),
            Ok(status) => Err(AdminFailure::Status(NvmeStatus(
                u16::try_from(status).unwrap_or(u16::MAX),
            ))),
            Err(errno) => Err(AdminFailure::Errno(errno)),
        }
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A discovery controller in memory, for the protocol tests.

    use super::*;
    use nvmf_proto::dlp::{emit_log_page, DiscoveryLogEntry};

    #[derive(Debug, Default)]
    pub struct FakeDc {
        pub entries: Vec<DiscoveryLogEntry>,
        pub genctr: u64,
        /// Bump GENCTR after this many more log commands (None: never).
        pub churn_every: Option<u32>,
        pub restart_once: bool,
        pub log: Vec<GetLogPage>,
        pub identify: Option<Vec<u8>>,
        pub supported: Option<Vec<u8>>,
        pub dim: Vec<(u32, Vec<u8>)>,
        pub fail_dim: Option<NvmeStatus>,
    }

    impl AdminTransport for FakeDc {
        fn device_name(&self) -> &str {
            "nvme-fake"
        }

        fn submit(&mut self, cmd: &mut AdminCommand<'_>) -> Result<u32, AdminFailure> {
            match cmd.opcode {
                OPC_GET_LOG_PAGE => {
                    let [c10, c11, c12, c13, c14, _] = cmd.cdw;
                    let g = GetLogPage::from_cdws([c10, c11, c12, c13, c14]);
                    self.log.push(g);
                    if let Some(n) = self.churn_every {
                        if self.log.len() % n as usize == 0 {
                            self.genctr += 1;
                        }
                    }
                    if g.offset >= 1024 && std::mem::take(&mut self.restart_once) {
                        return Err(AdminFailure::Status(NvmeStatus(0x190)));
                    }
                    let page = if g.lid == LID_DISCOVERY {
                        emit_log_page(self.genctr, 0, &self.entries).unwrap()
                    } else {
                        self.supported
                            .clone()
                            .ok_or(AdminFailure::Status(NvmeStatus(0x4109)))?
                    };
                    let Data::FromDevice(buf) = &mut cmd.data else {
                        panic!("log page without buffer")
                    };
                    assert_eq!(buf.len(), g.len as usize);
                    let start = usize::try_from(g.offset).unwrap();
                    for (i, b) in buf.iter_mut().enumerate() {
                        *b = page.get(start + i).copied().unwrap_or(0);
                    }
                    Ok(0)
                }
                OPC_IDENTIFY => {
                    let Data::FromDevice(buf) = &mut cmd.data else {
                        panic!()
                    };
                    buf.copy_from_slice(
                        self.identify
                            .as_ref()
                            .ok_or(AdminFailure::Errno(Errno::EIO))?,
                    );
                    Ok(0)
                }
                OPC_DIM => {
                    if let Some(s) = self.fail_dim {
                        return Err(AdminFailure::Status(s));
                    }
                    let Data::ToDevice(buf) = &cmd.data else {
                        panic!()
                    };
                    self.dim.push((cmd.cdw[0], buf.to_vec()));
                    Ok(0)
                }
                _ => Err(AdminFailure::Status(NvmeStatus(0x4001))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeDc;
    use super::*;
    use nvmf_proto::dim::Registration;
    use nvmf_proto::dlp::DiscoveryLogEntry;
    use nvmf_proto::types::{AdrFam, CntrlType, DcType};

    fn entries(n: usize) -> Vec<DiscoveryLogEntry> {
        (0..n)
            .map(|i| DiscoveryLogEntry {
                traddr: format!("10.0.{}.{}", i / 256, i % 256),
                trsvcid: "4420".into(),
                subnqn: format!("nqn.2024-01.io.test:sub{i}"),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn passthru_layout_matches_uapi() {
        assert_eq!(std::mem::size_of::<PassthruCmd>(), 72);
        assert_eq!(std::mem::offset_of!(PassthruCmd, addr), 24);
        assert_eq!(std::mem::offset_of!(PassthruCmd, data_len), 36);
        assert_eq!(std::mem::offset_of!(PassthruCmd, cdw10), 40);
        assert_eq!(std::mem::offset_of!(PassthruCmd, timeout_ms), 64);
        assert_eq!(std::mem::offset_of!(PassthruCmd, result), 68);
        // _IOWR('N', 0x41, 72)
        assert_eq!(
            u32::try_from(nix::request_code_readwrite!(b'N', 0x41, 72)).unwrap(),
            0xC048_4E41
        );
    }

    #[test]
    fn log_of_300_entries_read_in_4k_chunks_with_rae() {
        let mut dc = FakeDc {
            entries: entries(300),
            genctr: 7,
            ..Default::default()
        };
        let log = read_discovery_log(&mut dc, 0, DiscoveryLogLimits::default()).unwrap();
        assert_eq!(log.rounds, 1);
        assert_eq!(log.page.header.genctr, 7);
        assert_eq!(log.page.valid_entries().count(), 300);
        assert_eq!(log.raw.len(), 1024 + 300 * 1024);
        // header, 75 entry chunks, header
        assert_eq!(dc.log.len(), 77);
        assert_eq!(
            (dc.log[0].offset, dc.log[0].len, dc.log[0].rae),
            (0, 20, false)
        );
        let body = &dc.log[1..76];
        assert!(body.iter().all(|c| c.len == 4096 && c.lid == 0x70));
        assert!(
            body[..74].iter().all(|c| c.rae),
            "RAE on all but the last chunk"
        );
        assert!(!body[74].rae);
        assert_eq!(body[0].offset, 1024);
        assert_eq!(body[74].offset, 1024 + 74 * 4096);
        assert!(!dc.log[76].rae);
    }

    #[test]
    fn empty_log_is_header_then_header() {
        let mut dc = FakeDc::default();
        let log = read_discovery_log(&mut dc, 0, DiscoveryLogLimits::default()).unwrap();
        assert_eq!(log.page.entries.len(), 0);
        assert_eq!(dc.log.len(), 2);
    }

    #[test]
    fn persistent_genctr_churn_is_a_typed_error() {
        // GENCTR moves every third command: every round sees a change.
        let mut dc = FakeDc {
            entries: entries(5),
            churn_every: Some(3),
            ..Default::default()
        };
        let log = read_discovery_log(
            &mut dc,
            0,
            DiscoveryLogLimits {
                max_rounds: 6,
                max_entries: 100,
            },
        );
        assert!(
            matches!(log, Err(KernelError::GenctrChurn { attempts: 6, .. })),
            "{log:?}"
        );
        assert_eq!(
            dc.log.len(),
            1 + 6 * 3,
            "a header, then per round two entry chunks (5 KiB) and a header"
        );
    }

    #[test]
    fn one_change_settles_in_two_rounds() {
        struct OneBump(FakeDc, bool);
        impl AdminTransport for OneBump {
            fn device_name(&self) -> &str {
                "nvme-bump"
            }
            fn submit(&mut self, cmd: &mut AdminCommand<'_>) -> Result<u32, AdminFailure> {
                let r = self.0.submit(cmd);
                // After the first entries read, the target adds an entry.
                if !self.1 && self.0.log.len() == 2 {
                    self.1 = true;
                    self.0.genctr += 1;
                    self.0.entries.push(DiscoveryLogEntry {
                        subnqn: "nqn.new".into(),
                        ..Default::default()
                    });
                }
                r
            }
        }
        let mut t = OneBump(
            FakeDc {
                entries: entries(2),
                ..Default::default()
            },
            false,
        );
        let log = read_discovery_log(&mut t, 0, DiscoveryLogLimits::default()).unwrap();
        assert_eq!(log.rounds, 2);
        assert_eq!(log.page.header.genctr, 1);
        assert_eq!(log.page.valid_entries().count(), 3);
    }

    #[test]
    fn discover_restart_status_restarts() {
        let mut dc = FakeDc {
            entries: entries(3),
            restart_once: true,
            ..Default::default()
        };
        let log = read_discovery_log(&mut dc, 0, DiscoveryLogLimits::default()).unwrap();
        assert_eq!(log.rounds, 2);
        assert_eq!(log.page.valid_entries().count(), 3);
    }

    #[test]
    fn huge_numrec_refused_before_allocating() {
        struct Liar;
        impl AdminTransport for Liar {
            fn device_name(&self) -> &str {
                "nvme-liar"
            }
            fn submit(&mut self, cmd: &mut AdminCommand<'_>) -> Result<u32, AdminFailure> {
                if let Data::FromDevice(b) = &mut cmd.data {
                    b.fill(0);
                    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
                }
                Ok(0)
            }
        }
        let e = read_discovery_log(&mut Liar, 0, DiscoveryLogLimits::default()).unwrap_err();
        assert!(e.to_string().contains("more than the limit"), "{e}");
    }

    /// A target whose NUMREC moves without GENCTR: the first header says 2
    /// entries, the next 1, and for `flaps` more pairs of header reads it
    /// goes back and forth before it settles on 1.
    struct Shrink {
        calls: u32,
        headers: u32,
        flaps: u32,
    }

    impl AdminTransport for Shrink {
        fn device_name(&self) -> &str {
            "nvme-shrink"
        }
        fn submit(&mut self, cmd: &mut AdminCommand<'_>) -> Result<u32, AdminFailure> {
            self.calls += 1;
            let [c10, c11, c12, c13, c14, _] = cmd.cdw;
            let is_header = GetLogPage::from_cdws([c10, c11, c12, c13, c14]).offset == 0;
            if let Data::FromDevice(b) = &mut cmd.data {
                b.fill(0);
                if is_header {
                    let k = self.headers;
                    self.headers += 1;
                    let flapping = k == 0 || (k <= 2 * self.flaps && k % 2 == 0);
                    b[8] = if flapping { 2 } else { 1 };
                }
            }
            Ok(0)
        }
    }

    #[test]
    fn numrec_change_without_genctr_rereads_at_once() {
        let mut t = Shrink {
            calls: 0,
            headers: 0,
            flaps: 0,
        };
        let log = read_discovery_log(&mut t, 0, DiscoveryLogLimits::default()).unwrap();
        assert_eq!(log.rounds, 2);
        assert_eq!(log.page.header.numrec, 1);
    }

    #[test]
    fn numrec_that_keeps_changing_is_an_error() {
        let mut t = Shrink {
            calls: 0,
            headers: 0,
            flaps: 100,
        };
        let e = read_discovery_log(&mut t, 0, DiscoveryLogLimits::default()).unwrap_err();
        assert!(matches!(e, KernelError::NumrecChanged { .. }), "{e}");
        assert_eq!(t.calls, 1 + 6 * 2, "a header, six rounds, then the error");
    }

    #[test]
    fn a_page_that_shrank_under_the_entries_read_is_read_again() {
        // nvmet answers "invalid field" (0x6002: DNR, More, SC 2) when the
        // entries asked for are past its page's end.
        let mut dc = FakeDc {
            entries: entries(3),
            ..Default::default()
        };
        struct Shrunk(FakeDc, bool);
        impl AdminTransport for Shrunk {
            fn device_name(&self) -> &str {
                "nvme-shrunk"
            }
            fn submit(&mut self, cmd: &mut AdminCommand<'_>) -> Result<u32, AdminFailure> {
                // The first entries read, after the first header.
                if !self.1 && self.0.log.len() == 1 {
                    self.1 = true;
                    self.0.entries.truncate(1);
                    self.0.genctr += 1;
                    return Err(AdminFailure::Status(NvmeStatus(0x6002)));
                }
                self.0.submit(cmd)
            }
        }
        dc.genctr = 4;
        let mut t = Shrunk(dc, false);
        let log = read_discovery_log(&mut t, 0, DiscoveryLogLimits::default()).unwrap();
        assert_eq!(log.rounds, 2);
        assert_eq!(log.page.valid_entries().count(), 1);
    }

    #[test]
    fn status_and_errno_are_kept_apart() {
        struct Bad(AdminFailure);
        impl AdminTransport for Bad {
            fn device_name(&self) -> &str {
                "nvme9"
            }
            fn submit(&mut self, _: &mut AdminCommand<'_>) -> Result<u32, AdminFailure> {
                Err(self.0)
            }
        }
        let e = read_discovery_log(
            &mut Bad(AdminFailure::Status(NvmeStatus(0x4002))),
            0,
            DiscoveryLogLimits::default(),
        )
        .unwrap_err();
        assert!(matches!(e, KernelError::Nvme { .. }));
        assert!(
            e.to_string().contains("nvme9") && e.to_string().contains("invalid field"),
            "{e}"
        );
        let e = identify_controller(&mut Bad(AdminFailure::Errno(Errno::EINTR))).unwrap_err();
        assert!(matches!(
            e,
            KernelError::Ioctl {
                errno: Errno::EINTR,
                ..
            }
        ));
        assert!(e.to_string().contains("reset"), "{e}");
    }

    #[test]
    fn identify_supported_and_dim() {
        let id = IdentifyController {
            cntrltype: CntrlType::Discovery,
            dctype: DcType::Ddc,
            subnqn: "nqn.2014-08.org.nvmexpress.discovery".into(),
            ..Default::default()
        };
        let mut slp = SupportedLogPages::default();
        slp.set(0x70, nvmf_proto::logpages::LidSupport(0x0002_0001));
        let mut dc = FakeDc {
            identify: Some(id.emit().unwrap()),
            supported: Some(slp.emit()),
            ..Default::default()
        };
        let (raw, parsed) = identify_controller(&mut dc).unwrap();
        assert_eq!(raw.len(), 4096);
        assert_eq!(parsed, id);
        let s = supported_log_pages(&mut dc).unwrap();
        assert!(s.discovery_features().pleos);
        let sl = dc.log.last().unwrap();
        assert_eq!((sl.lid, sl.rae, sl.len), (0, true, 1024));
        let reg = DimData::registration(&Registration {
            host_nqn: "nqn.h",
            host_id: [1; 16],
            hostname: "h",
            os_version: "Linux",
            dc_adrfam: AdrFam::Ipv4,
            symname: None,
        });
        send_dim(&mut dc, Tas::Register, &reg).unwrap();
        assert_eq!(dc.dim.len(), 1);
        assert_eq!(dc.dim[0].0, 0);
        assert_eq!(DimData::parse(&dc.dim[0].1).unwrap(), reg);
        dc.fail_dim = Some(NvmeStatus(0x4001));
        let e = send_dim(&mut dc, Tas::Deregister, &reg).unwrap_err();
        assert!(e.to_string().contains("invalid command opcode"), "{e}");
    }
}
