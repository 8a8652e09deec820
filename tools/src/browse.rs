//! `stasadm browse`: the built-in mDNS querier on its own (or avahi-daemon,
//! through the Avahi backend), for a fixed time, and what it heard.

use std::time::Duration;

use stas_mdns::avahi::avahi_present;
use stas_mdns::backend::MdnsBackend;
use stas_mdns::driver::DriverConfig;
use stas_mdns::{DcRecord, InterfaceStats, MdnsError};

use crate::output::{table, OrderedObject};

/// What a browse heard.
#[derive(Debug, Clone, Default)]
pub struct BrowseResult {
    /// One record per discovery controller address, sorted.
    pub records: Vec<DcRecord>,
    /// The interfaces browsed and their counters (built-in querier only).
    pub stats: Vec<InterfaceStats>,
    /// The backend that listened (`Builtin` or `Avahi`).
    pub backend: MdnsBackend,
}

/// The bus avahi-daemon is looked for on: `address`, else the system bus.
/// `None` when it cannot be reached and `backend` can do without it
/// (`auto` then means built-in).
async fn avahi_bus(
    backend: MdnsBackend,
    address: Option<&str>,
) -> Result<Option<zbus::Connection>, MdnsError> {
    if backend == MdnsBackend::Builtin {
        return Ok(None);
    }
    let conn = match address {
        Some(a) => match zbus::connection::Builder::address(a) {
            Ok(b) => b.build().await,
            Err(e) => Err(e),
        },
        None => zbus::Connection::system().await,
    };
    match conn {
        Ok(c) => Ok(Some(c)),
        Err(_) if backend == MdnsBackend::Auto => Ok(None),
        Err(e) => Err(MdnsError::Bus {
            op: "connect to the bus",
            reason: e.to_string(),
        }),
    }
}

/// Browses for `timeout` with `backend` and returns the services resolved
/// at its end. avahi-daemon is looked for on `bus_address`, else the
/// system bus. Runs its own single-thread runtime (call it from plain
/// code).
pub fn browse(
    timeout: Duration,
    backend: MdnsBackend,
    bus_address: Option<&str>,
) -> Result<BrowseResult, MdnsError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| MdnsError::Io {
            op: "start the runtime",
            reason: e.to_string(),
        })?;
    rt.block_on(async {
        let bus = avahi_bus(backend, bus_address).await?;
        if backend == MdnsBackend::Avahi {
            if let Some(bus) = &bus {
                // The backend would wait for it; a one-shot browse cannot.
                if !avahi_present(bus).await {
                    return Err(MdnsError::Bus {
                        op: "find avahi-daemon",
                        reason: "org.freedesktop.Avahi has no owner on the bus (is avahi-daemon running?); \
                                 --backend builtin needs no daemon"
                            .to_owned(),
                    });
                }
            }
        }
        let mut browser = stas_mdns::backend::start(backend, DriverConfig::default(), bus.as_ref()).await?;
        let end = tokio::time::sleep(timeout);
        tokio::pin!(end);
        loop {
            tokio::select! {
                () = &mut end => break,
                // Events are not printed as they come: the final view is.
                e = browser.recv() => if e.is_none() { break },
            }
        }
        let mut records: Vec<DcRecord> = browser
            .services()
            .iter()
            .flat_map(|s| s.records())
            .collect();
        records.sort();
        Ok(BrowseResult {
            records,
            stats: browser.stats(),
            backend: browser.backend(),
        })
    })
}

fn transport(r: &DcRecord) -> String {
    r.transport
        .map_or_else(|| "invalid".to_owned(), |t| t.as_str().to_owned())
}

/// The records as a table.
pub fn browse_table(records: &[DcRecord]) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.interface.clone(),
                r.family.to_string(),
                r.scoped_address(),
                r.port.to_string(),
                transport(r),
                r.nqn.clone(),
                r.ttl.to_string(),
                format!("{}.{}", r.instance, r.service_type),
            ]
        })
        .collect();
    table(
        &[
            "INTERFACE",
            "FAMILY",
            "ADDRESS",
            "PORT",
            "TRANSPORT",
            "NQN",
            "TTL",
            "SERVICE",
        ],
        &rows,
    )
}

/// The records as JSON objects (string values, keys in a fixed order).
pub fn browse_json(records: &[DcRecord]) -> Result<String, serde_json::Error> {
    let objects: Vec<OrderedObject> = records
        .iter()
        .map(|r| {
            OrderedObject::from_pairs([
                ("interface", r.interface.clone()),
                ("family", r.family.to_string()),
                ("address", r.address.to_string()),
                ("scope", r.scope.clone().unwrap_or_default()),
                ("port", r.port.to_string()),
                ("transport", transport(r)),
                ("nqn", r.nqn.clone()),
                ("ttl", r.ttl.to_string()),
                ("instance", r.instance.clone()),
                ("service-type", r.service_type.clone()),
            ])
        })
        .collect();
    serde_json::to_string_pretty(&objects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nvmf_proto::mdns::Transport;
    use stas_mdns::AddressFamily;

    fn rec(address: &str, scope: Option<&str>, transport: Option<Transport>) -> DcRecord {
        let address: std::net::IpAddr = address.parse().unwrap();
        DcRecord {
            interface: "eth0".into(),
            ifindex: 2,
            family: AddressFamily::of(&address),
            address,
            scope: scope.map(str::to_owned),
            port: 8009,
            transport,
            nqn: nvmf_proto::WELL_KNOWN_DISCOVERY_NQN.into(),
            ttl: 120,
            instance: "dc-1".into(),
            service_type: "_nvme-disc._tcp.local".into(),
        }
    }

    #[test]
    fn records_print_as_a_table_and_as_json() {
        let records = [
            rec("192.168.7.10", None, Some(Transport::Tcp)),
            rec("fe80::7", Some("eth0"), None),
        ];
        let t = browse_table(&records);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("INTERFACE  FAMILY  ADDRESS"));
        assert!(lines[1].contains("192.168.7.10") && lines[1].contains(" tcp "));
        assert!(lines[2].contains("fe80::7%eth0") && lines[2].contains(" invalid "));
        let j: serde_json::Value = serde_json::from_str(&browse_json(&records).unwrap()).unwrap();
        assert_eq!(j[1]["address"], "fe80::7");
        assert_eq!(j[1]["scope"], "eth0");
        assert_eq!(j[1]["family"], "IPv6");
        assert_eq!(j[0]["transport"], "tcp");
        assert_eq!(j[0]["port"], "8009");
        assert_eq!(j[0]["service-type"], "_nvme-disc._tcp.local");
    }
}
