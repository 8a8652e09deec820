#![no_main]
//! Kernel uevent datagrams: parse, then use every accessor a daemon uses.

use libfuzzer_sys::fuzz_target;
use nvmf_kernel::uevent::Uevent;

fuzz_target!(|data: &[u8]| {
    let Ok(ev) = Uevent::parse(data) else { return };
    assert!(ev.devpath.starts_with('/'));
    let _ = (ev.devname(), ev.seqnum(), ev.subsystem(), ev.nvme_event(), ev.is_nvme_controller());
    if let Some(Ok(aen)) = ev.aen() {
        let _ = aen.is_discovery_log_change();
    }
});
