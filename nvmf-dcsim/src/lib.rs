//! nvmf-dcsim: simulated NVMe-oF discovery controllers (CDC, DDC or plain)
//! speaking real NVMe/TCP, so that a real host driver (Linux nvme-tcp),
//! nvme-cli and stafd can be tested against registration (TP8010 DIM),
//! PLEO, zoning, referrals, entry flags, AENs and hostile log pages that the
//! kernel's own target (nvmet) cannot play.
//!
//! | module | what |
//! |---|---|
//! | [`topology`] | the TOML topology: DCs, entries, zoning, faults |
//! | [`association`] | one host association as a state machine (no I/O) |
//! | [`dc`] | what a DC's associations share: spec, GENCTRs, controller IDs |
//! | [`server`] | listeners, connections, keep-alive timers, reloads |
//! | [`state`] | the JSON record of what was seen (`--state`) |

pub mod association;
pub mod dc;
pub mod server;
pub mod state;
pub mod topology;

pub use server::{SimError, Simulator};
pub use state::Recorder;
pub use topology::{InvalidDc, Topology, TopologyError, EXAMPLE};
