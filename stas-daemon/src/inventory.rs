//! The controller inventory both daemons share: which kernel controllers
//! exist and what identifies them, so that "is this transport ID already
//! connected?" costs a lookup, not a sysfs scan.
//!
//! One full scan fills it (the first lookup makes it) and one more after
//! the uevent socket lost events ([`Inventory::rescan`]); between them it
//! follows the kernel's uevents (`add` and `NVME_EVENT=connected` mark a
//! controller to be read, `remove` forgets it) and the daemon's own
//! connects and disconnects. A controller announced by an event is read
//! lazily, by the next lookup, because its attributes are incomplete while
//! its first connect runs (docs/architecture.md, "The controller
//! inventory").
//!
//! Lookups go through two indexes — subsystem NQN, and transport address
//! for discovery controllers reached through the well-known NQN — and then
//! read the few candidates afresh, so a stale `src_addr` or a controller
//! the kernel is deleting never decides an adoption. Every call that reads
//! sysfs blocks: the daemons make them on the blocking pool.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use nvmf_kernel::sysfs::{controller_instance, ControllerInfo};
use nvmf_kernel::uevent::{Action, Uevent};
use nvmf_kernel::KernelError;
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;

use super::lock;
use crate::kernel::FabricKernel;
use stas_tid::matching::{self, existing, ExistingController, InterfaceTable};
use stas_tid::{parse_scoped_ip, Tid};

/// Which kind of controller a lookup adopts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A discovery controller (stafd).
    Discovery,
    /// An I/O controller (stacd).
    Io,
}

/// Transport, service id and address as matching compares them: IP
/// addresses folded and without scope (all unparsable ones compare equal,
/// as [`stas_tid::ip_equal`] has it), other addresses case-folded.
type AddressKey = (String, String, String);

fn address_key(transport: &str, trsvcid: &str, traddr: &str) -> AddressKey {
    let addr = if matches!(transport, "tcp" | "rdma") {
        parse_scoped_ip(traddr, true)
            .map(|(ip, _)| ip.to_string())
            .unwrap_or_default()
    } else {
        traddr.to_lowercase()
    };
    (transport.to_owned(), trsvcid.to_owned(), addr)
}

/// A device name ordered by instance, so candidates are tried in the
/// kernel's order, like a scan would.
type Device = (u32, String);

fn device(name: &str) -> Device {
    (
        controller_instance(name).unwrap_or(u32::MAX),
        name.to_owned(),
    )
}

/// How often the inventory went to sysfs (for tests and debug output).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InventoryStats {
    /// Full scans of every controller.
    pub full_scans: u64,
    /// Single-controller reads.
    pub reads: u64,
}

#[derive(Debug, Default)]
struct State {
    known: HashMap<String, ExistingController>,
    by_nqn: HashMap<String, BTreeSet<Device>>,
    by_address: HashMap<AddressKey, BTreeSet<Device>>,
    /// Announced by an event, not read yet (or not identified when read).
    unread: BTreeSet<Device>,
    /// Being deleted by this daemon: never adopted.
    deleting: HashSet<String>,
    /// Bumped when events were lost: the known set may be wrong.
    generation: u64,
    /// The generation the last full scan covers.
    scanned: Option<u64>,
    stats: InventoryStats,
}

impl State {
    fn forget(&mut self, name: &str) {
        let dev = device(name);
        self.unread.remove(&dev);
        self.deleting.remove(name);
        let Some(old) = self.known.remove(name) else {
            return;
        };
        if let Some(set) = self.by_nqn.get_mut(&old.subsysnqn) {
            set.remove(&dev);
            if set.is_empty() {
                self.by_nqn.remove(&old.subsysnqn);
            }
        }
        let key = address_key(&old.transport, &old.trsvcid, &old.traddr);
        if let Some(set) = self.by_address.get_mut(&key) {
            set.remove(&dev);
            if set.is_empty() {
                self.by_address.remove(&key);
            }
        }
    }

    /// Records what `info` says; a controller not identified yet (its first
    /// connect still running: no subsystem NQN) stays to be read again.
    fn put(&mut self, info: &ControllerInfo) {
        self.forget_keeping_deleting(&info.name);
        let e = existing(info);
        let dev = device(&e.name);
        if e.subsysnqn.is_empty() {
            self.unread.insert(dev);
            return;
        }
        self.by_nqn
            .entry(e.subsysnqn.clone())
            .or_default()
            .insert(dev.clone());
        self.by_address
            .entry(address_key(&e.transport, &e.trsvcid, &e.traddr))
            .or_default()
            .insert(dev);
        self.known.insert(e.name.clone(), e);
    }

    fn forget_keeping_deleting(&mut self, name: &str) {
        let deleting = self.deleting.contains(name);
        self.forget(name);
        if deleting {
            self.deleting.insert(name.to_owned());
        }
    }

    fn candidates(&self, tid: &Tid) -> Vec<String> {
        let set = if tid.subsysnqn == WELL_KNOWN_DISCOVERY_NQN {
            self.by_address
                .get(&address_key(&tid.transport, &tid.trsvcid, &tid.traddr))
        } else {
            self.by_nqn.get(&tid.subsysnqn)
        };
        set.into_iter().flatten().map(|(_, n)| n.clone()).collect()
    }
}

/// The controllers the kernel has, kept current by events (see the module
/// documentation). Shared by a daemon's service and its controller tasks.
#[derive(Debug, Default)]
pub struct Inventory {
    state: Mutex<State>,
    /// Held during a full scan, so lookups that find the inventory stale
    /// wait for one scan instead of each making their own.
    scanning: Mutex<()>,
}

impl Inventory {
    /// An empty inventory; the first lookup scans.
    pub fn new() -> Self {
        Self::default()
    }

    /// How often it went to sysfs.
    pub fn stats(&self) -> InventoryStats {
        lock(&self.state).stats
    }

    /// Follows one kernel uevent (on the event loop: no I/O).
    pub fn note_uevent(&self, ev: &Uevent) {
        if !ev.is_nvme_controller() {
            return;
        }
        let name = ev.devname();
        let mut s = lock(&self.state);
        match ev.action {
            Action::Remove => s.forget(name),
            Action::Add => {
                s.unread.insert(device(name));
            }
            // Live again: its source address may have moved.
            Action::Change if ev.nvme_event() == Some("connected") => {
                s.unread.insert(device(name));
            }
            _ => {}
        }
    }

    /// Events were lost: the next lookup (or [`Self::rescan`]) scans again.
    pub fn invalidate(&self) {
        let mut s = lock(&self.state);
        s.generation = s.generation.wrapping_add(1);
    }

    /// After lost events: one full scan (shared with any lookup that wants
    /// one meanwhile); returns the controllers that exist.
    pub fn rescan(
        &self,
        kernel: &(impl FabricKernel + ?Sized),
    ) -> Result<BTreeSet<String>, KernelError> {
        self.invalidate();
        self.ensure_scanned(kernel)?;
        Ok(lock(&self.state).known.keys().cloned().collect())
    }

    fn ensure_scanned(&self, kernel: &(impl FabricKernel + ?Sized)) -> Result<(), KernelError> {
        let current = |s: &State| s.scanned == Some(s.generation);
        if current(&lock(&self.state)) {
            return Ok(());
        }
        let _one_scan = lock(&self.scanning);
        let generation = {
            let s = lock(&self.state);
            if current(&s) {
                return Ok(());
            }
            s.generation
        };
        let all = kernel.controllers()?;
        let mut s = lock(&self.state);
        s.stats.full_scans = s.stats.full_scans.saturating_add(1);
        let deleting = std::mem::take(&mut s.deleting);
        let unread = std::mem::take(&mut s.unread);
        s.known.clear();
        s.by_nqn.clear();
        s.by_address.clear();
        for c in &all {
            s.put(c);
        }
        let present: HashSet<&str> = all.iter().map(|c| c.name.as_str()).collect();
        // Announced after the scan listed the directory: still to be read.
        s.unread.extend(
            unread
                .into_iter()
                .filter(|(_, n)| !present.contains(n.as_str())),
        );
        s.deleting = deleting
            .into_iter()
            .filter(|n| present.contains(n.as_str()))
            .collect();
        s.scanned = Some(generation);
        Ok(())
    }

    /// Reads the controllers that events announced since the last lookup.
    fn read_unread(&self, kernel: &(impl FabricKernel + ?Sized)) -> Result<(), KernelError> {
        let unread: Vec<Device> = lock(&self.state).unread.iter().cloned().collect();
        for (_, name) in unread {
            self.read(kernel, &name)?;
        }
        Ok(())
    }

    /// Reads one controller afresh and records it; None if it is gone.
    fn read(
        &self,
        kernel: &(impl FabricKernel + ?Sized),
        name: &str,
    ) -> Result<Option<ControllerInfo>, KernelError> {
        let info = kernel.controller(name)?;
        let mut s = lock(&self.state);
        s.stats.reads = s.stats.reads.saturating_add(1);
        match &info {
            Some(c) => s.put(c),
            None => s.forget(name),
        }
        Ok(info)
    }

    /// The controller of `role` that already serves `tid`, if any (§8.6),
    /// never one being deleted. Costs the reads of the new controllers
    /// events announced plus those of the few candidates (same subsystem,
    /// or same address for the well-known discovery NQN).
    pub fn find(
        &self,
        kernel: &(impl FabricKernel + ?Sized),
        role: Role,
        tid: &Tid,
    ) -> Result<Option<String>, KernelError> {
        self.ensure_scanned(kernel)?;
        self.read_unread(kernel)?;
        let candidates = lock(&self.state).candidates(tid);
        if candidates.is_empty() {
            return Ok(None);
        }
        // Only TCP's host-side rules look at interfaces (a netlink dump).
        let ifaces = if tid.transport == "tcp"
            && !(tid.host_traddr.is_empty() && tid.host_iface.is_empty())
        {
            kernel.interfaces()
        } else {
            InterfaceTable::default()
        };
        for name in candidates {
            let Some(info) = self.read(kernel, &name)? else {
                continue;
            };
            if lock(&self.state).deleting.contains(&name)
                || info
                    .state
                    .as_deref()
                    .unwrap_or_default()
                    .starts_with("deleting")
            {
                continue;
            }
            let e = existing(&info);
            let kind_ok = match role {
                Role::Discovery => e.is_dc,
                Role::Io => e.is_ioc,
            };
            if kind_ok && matching::matches(&e, tid, &ifaces) {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Records a controller this daemon has just connected (the kernel's
    /// `add` event for it may come before or after: both are harmless).
    pub fn note_connected(&self, kernel: &(impl FabricKernel + ?Sized), name: &str) {
        if let Err(e) = self.read(kernel, name) {
            log::debug!("{name} - cannot read it after connecting ({e}); reading it later");
            lock(&self.state).unread.insert(device(name));
        }
    }

    /// This daemon is deleting `name`: nobody may adopt it meanwhile.
    pub fn note_deleting(&self, name: &str) {
        lock(&self.state).deleting.insert(name.to_owned());
    }

    /// This daemon deleted `name`.
    pub fn note_deleted(&self, name: &str) {
        lock(&self.state).forget(name);
    }

    /// Every known controller (after a scan if none was made), for audits
    /// at start and reload.
    pub fn all(
        &self,
        kernel: &(impl FabricKernel + ?Sized),
    ) -> Result<Vec<ExistingController>, KernelError> {
        self.ensure_scanned(kernel)?;
        self.read_unread(kernel)?;
        let s = lock(&self.state);
        let mut v: Vec<ExistingController> = s
            .known
            .values()
            .filter(|e| !s.deleting.contains(&e.name))
            .cloned()
            .collect();
        v.sort_by_key(|e| device(&e.name));
        Ok(v)
    }

    /// The given controllers read afresh (those that exist and are
    /// identified), for the audit after `add` events: O(names).
    pub fn read_some(
        &self,
        kernel: &(impl FabricKernel + ?Sized),
        names: &BTreeSet<String>,
    ) -> Result<Vec<ExistingController>, KernelError> {
        self.ensure_scanned(kernel)?;
        let mut out = Vec::new();
        for name in names {
            if self.read(kernel, name)?.is_none() {
                continue;
            }
            let s = lock(&self.state);
            if let Some(e) = s.known.get(name).filter(|_| !s.deleting.contains(name)) {
                out.push(e.clone());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
