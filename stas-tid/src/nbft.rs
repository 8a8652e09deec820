//! Discovery controllers named by the NVMe Boot Firmware Table (ACPI NBFT):
//! stafd adds them to its configured controllers so the connections the
//! firmware booted from are adopted, not duplicated (docs/behaviour.md
//! §13.4).

use nvmf_proto::nbft::Nbft;

use stas_config::Cid;

/// Default discovery port when an NBFT URI has none (upstream writes the
/// literal text `None` there, a defect: §13.4 [BUG]).
const DEFAULT_DISCOVERY_TRSVCID: &str = "8009";

/// The discovery controllers of `tables` as cids: transport from the URI
/// scheme (`nvme+tcp` → `tcp`), address and port from the URI, the NQN, the
/// NBFT host NQN when the firmware marked it configured, and the interface
/// whose MAC is the HFI's (`iface_of_mac`), when one matches.
pub fn discovery_cids(
    tables: &[Nbft],
    iface_of_mac: impl Fn(&[u8; 6]) -> Option<String>,
) -> Vec<Cid> {
    let mut out = Vec::new();
    for t in tables {
        for d in t.discovery.iter().flatten() {
            let Some((transport, host, port)) = Nbft::discovery_uri_parts(&d.uri) else {
                log::warn!(
                    "NBFT discovery descriptor {}: unusable URI {:?}",
                    d.index,
                    d.uri
                );
                continue;
            };
            let mut cid = Cid::new();
            cid.insert("transport".into(), transport);
            cid.insert("traddr".into(), host);
            cid.insert(
                "trsvcid".into(),
                port.map_or_else(|| DEFAULT_DISCOVERY_TRSVCID.to_owned(), |p| p.to_string()),
            );
            cid.insert("subsysnqn".into(), d.nqn.clone());
            if t.host.host_nqn_configured {
                cid.insert("host-nqn".into(), t.host.nqn.clone());
            }
            let hfi = d
                .hfi_index
                .and_then(|i| t.hfis.get(i))
                .and_then(Option::as_ref);
            if let Some(iface) = hfi.and_then(|h| iface_of_mac(&h.mac)) {
                cid.insert("host-iface".into(), iface);
            }
            out.push(cid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Nbft {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/data/fuzz-seeds/nbft/dell-r760.bin");
        Nbft::parse(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn upstream_fixture_gives_one_dc() {
        // §13.5: no local NIC has the HFI's MAC, so no host-iface.
        let cids = discovery_cids(&[fixture()], |_| None);
        let expected: Cid = [
            ("subsysnqn", "nqn.2014-08.org.nvmexpress.discovery"),
            ("traddr", "100.71.103.50"),
            ("transport", "tcp"),
            ("trsvcid", "8009"),
            ("host-nqn", "nqn.1988-11.com.dell:PowerEdge.R760.1234567"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(cids, [expected]);
    }

    #[test]
    fn interface_found_by_mac() {
        let cids = discovery_cids(&[fixture()], |mac| {
            (mac == &[0xb0, 0x26, 0x28, 0xe8, 0x7c, 0x0e]).then(|| "eno1".to_owned())
        });
        assert_eq!(cids[0].get("host-iface").map(String::as_str), Some("eno1"));
    }
}
