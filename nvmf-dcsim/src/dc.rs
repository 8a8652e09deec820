//! One simulated discovery controller as its associations share it: the
//! current spec, each host's GENCTR, and the controller IDs handed out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;

use crate::state::Recorder;
use crate::topology::DcSpec;

/// What a host last saw change.
#[derive(Debug, Clone, Copy)]
struct HostView {
    genctr: u64,
    view: u64,
}

/// A discovery controller's shared state.
#[derive(Debug)]
pub struct Dc {
    spec: RwLock<Arc<DcSpec>>,
    hosts: Mutex<HashMap<String, HostView>>,
    next_cntlid: AtomicU16,
    retired: AtomicBool,
    changes: watch::Sender<u64>,
    /// Where what it sees is recorded.
    pub recorder: Arc<Recorder>,
}

impl Dc {
    /// A DC serving `spec`.
    pub fn new(spec: DcSpec, recorder: Arc<Recorder>) -> Arc<Self> {
        let listen = spec.listen.to_string();
        recorder.update(&spec.name, |s| s.listen = listen);
        Arc::new(Self {
            spec: RwLock::new(Arc::new(spec)),
            hosts: Mutex::new(HashMap::new()),
            next_cntlid: AtomicU16::new(1),
            retired: AtomicBool::new(false),
            changes: watch::channel(0).0,
            recorder,
        })
    }

    /// The spec it serves now.
    pub fn spec(&self) -> Arc<DcSpec> {
        self.spec.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Its name.
    pub fn name(&self) -> String {
        self.spec().name.clone()
    }

    /// The GENCTR `hostnqn` is at (1 for a host not seen before).
    pub fn genctr(&self, hostnqn: &str) -> u64 {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = hosts.get(hostnqn) {
            return h.genctr;
        }
        let view = self.spec().view_of(hostnqn);
        hosts.insert(hostnqn.to_owned(), HostView { genctr: 1, view });
        self.recorder.update(&self.name(), |s| {
            s.genctr.insert(hostnqn.to_owned(), 1);
        });
        1
    }

    /// Serves `spec` from now on: every host whose page changed moves to a
    /// new GENCTR, and the associations are told to look.
    pub fn replace(&self, spec: DcSpec) {
        let name = spec.name.clone();
        *self.spec.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(spec);
        let spec = self.spec();
        let mut changed = Vec::new();
        {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            for (nqn, h) in hosts.iter_mut() {
                let view = spec.view_of(nqn);
                if view != h.view {
                    h.view = view;
                    h.genctr = h.genctr.wrapping_add(1).max(1);
                    changed.push((nqn.clone(), h.genctr));
                }
            }
        }
        if !changed.is_empty() {
            log::info!("{name}: the log page changed for {} host(s)", changed.len());
            self.recorder.update(&name, |s| s.genctr.extend(changed));
        }
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Taken out of the topology: its associations end.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether it was taken out of the topology.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    /// Tells when the spec changed or the DC was retired.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A controller ID for a new association (1..=0xFFEF, wrapping).
    pub fn next_cntlid(&self) -> u16 {
        let id = self.next_cntlid.fetch_add(1, Ordering::Relaxed);
        if id == 0 || id > 0xffef {
            self.next_cntlid.store(2, Ordering::Relaxed);
            return 1;
        }
        id
    }
}
