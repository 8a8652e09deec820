//! The effective configuration, as `--check-config` prints it.

use super::*;

// ---------------------------------------------------------------------------
// Effective configuration

/// `name = value`, or a commented line when the option is not set.
pub(crate) fn write_opt(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    value: Option<String>,
) -> fmt::Result {
    match value {
        Some(v) => writeln!(f, "{name} = {v}"),
        None => writeln!(f, "# {name} = (kernel default)"),
    }
}

pub(crate) fn write_global(
    f: &mut fmt::Formatter<'_>,
    g: &GlobalOptions,
    daemon: Daemon,
) -> fmt::Result {
    let n = |v: Option<u32>| v.map(|v| v.to_string());
    writeln!(f, "[{GLOBAL}]")?;
    writeln!(f, "tron = {}", g.tron)?;
    writeln!(f, "hdr-digest = {}", g.hdr_digest)?;
    writeln!(f, "data-digest = {}", g.data_digest)?;
    write_opt(f, "kato", n(g.kato))?;
    if daemon == Daemon::Stacd {
        write_opt(f, "nr-io-queues", n(g.nr_io_queues))?;
        write_opt(f, "nr-write-queues", n(g.nr_write_queues))?;
        write_opt(f, "nr-poll-queues", n(g.nr_poll_queues))?;
    }
    write_opt(f, "queue-size", n(g.queue_size))?;
    write_opt(f, "reconnect-delay", n(g.reconnect_delay))?;
    write_opt(f, "ctrl-loss-tmo", g.ctrl_loss_tmo.map(|v| v.to_string()))?;
    write_opt(f, "disable-sqflow", g.disable_sqflow.map(|v| v.to_string()))?;
    writeln!(f, "ignore-iface = {}", g.ignore_iface)?;
    writeln!(f, "ip-family = {}", g.ip_family)
}

pub(crate) fn write_controllers(
    f: &mut fmt::Formatter<'_>,
    controllers: &[ControllerSpec],
    excludes: &[Cid],
) -> fmt::Result {
    writeln!(f, "\n[{CONTROLLERS}]")?;
    if controllers.is_empty() && excludes.is_empty() {
        writeln!(f, "# no controller or exclude entries")?;
    }
    let entries = controllers
        .iter()
        .map(|c| ("controller", &c.cid))
        .chain(excludes.iter().map(|e| ("exclude", e)));
    for (option, cid) in entries {
        let value = render_cid(cid, true);
        // No trailing blank for an empty entry.
        let sep = if value.is_empty() { "" } else { " " };
        writeln!(f, "{option} ={sep}{value}")?;
    }
    Ok(())
}

pub(crate) fn enabled(b: bool) -> &'static str {
    if b {
        "enabled"
    } else {
        "disabled"
    }
}

/// The effective configuration as a stafd.conf file, every option listed
/// (secrets redacted).
impl fmt::Display for StafdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# Effective stafd configuration (defaults included)")?;
        write_global(f, &self.global, Daemon::Stafd)?;
        writeln!(f, "pleo = {}", enabled(self.pleo))?;
        writeln!(f, "\n[{SERVICE_DISCOVERY}]")?;
        writeln!(f, "zeroconf = {}", enabled(self.zeroconf))?;
        writeln!(f, "mdns-backend = {}", self.mdns_backend)?;
        writeln!(f, "\n[{DC_MANAGEMENT}]")?;
        writeln!(
            f,
            "persistent-connections = {}",
            self.persistent_connections
        )?;
        writeln!(
            f,
            "zeroconf-connections-persistence = {}",
            self.zeroconf_persistence
        )?;
        writeln!(f, "persistent = {}", self.persistent)?;
        writeln!(
            f,
            "epcsd-poll-interval-minutes = {}",
            self.epcsd_poll_minutes
        )?;
        write_controllers(f, &self.controllers, &self.excludes)
    }
}

/// The effective configuration as a stacd.conf file, every option listed
/// (secrets redacted).
impl fmt::Display for StacdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# Effective stacd configuration (defaults included)")?;
        write_global(f, &self.global, Daemon::Stacd)?;
        writeln!(f, "\n[{IOC_MANAGEMENT}]")?;
        writeln!(f, "disconnect-scope = {}", self.disconnect_scope)?;
        let trtypes: Vec<&str> = self.disconnect_trtypes.iter().map(|t| t.as_str()).collect();
        writeln!(f, "disconnect-trtypes = {}", trtypes.join("+"))?;
        writeln!(
            f,
            "connect-attempts-on-ncc = {}",
            self.connect_attempts_on_ncc
        )?;
        write_controllers(f, &self.controllers, &self.excludes)
    }
}
