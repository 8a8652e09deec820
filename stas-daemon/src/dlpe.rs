//! Discovery log entries in the nvme-stas DLPE dict form (D-Bus, and
//! version-1 last-known-configuration files) and back.

use nvmf_proto::dlp::{DiscoveryLogEntry, Tsas};
use nvmf_proto::types::{
    AdrFam, EFlags, RdmaCms, RdmaPrType, RdmaQpType, SecType, SubType, TrType, Treq,
};

/// The entry as nvme-stas's ordered DLPE dict.
pub fn to_dict(e: &DiscoveryLogEntry) -> Vec<(String, String)> {
    e.stas_dict()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn code<T: From<u8>>(text: &str, names: &[(&str, u8)]) -> Option<T> {
    names
        .iter()
        .find(|(n, _)| *n == text)
        .map(|(_, v)| *v)
        .or_else(|| text.parse().ok())
        .map(T::from)
}

/// Rebuilds an entry from its DLPE dict (as stafd sends it on D-Bus, or as
/// a version-1 last-known configuration saved it). None if a field does
/// not parse.
pub fn from_dict(d: &[(String, String)]) -> Option<DiscoveryLogEntry> {
    let get = |k: &str| d.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let trtype: TrType = code(
        get("trtype")?,
        &[
            ("unspecified", 0),
            ("rdma", 1),
            ("fc", 2),
            ("tcp", 3),
            ("loop", 254),
        ],
    )?;
    let treq = match get("treq")? {
        "not specified" => 0,
        "required" => 1,
        "not required" => 2,
        "disable sqflow" => 4,
        other => other.parse().ok()?,
    };
    let tsas = match (trtype, get("tsas")) {
        (TrType::Tcp, Some(t)) => {
            let sec = ["none", "tls", "tls1.3"]
                .iter()
                .position(|n| t.contains(&format!("'{n}'")))
                .unwrap_or(0);
            Tsas::tcp(SecType::from(u8::try_from(sec).unwrap_or(0)))
        }
        (TrType::Rdma, Some(t)) => {
            let pick = |key: &str, names: &[&str], base: u8| -> u8 {
                let value = t
                    .split(&format!("'{key}': '"))
                    .nth(1)
                    .and_then(|r| r.split('\'').next())
                    .unwrap_or("");
                names
                    .iter()
                    .position(|n| *n == value)
                    .and_then(|p| u8::try_from(p).ok())
                    .map_or(0, |p| p.saturating_add(base))
            };
            Tsas::rdma(nvmf_proto::dlp::RdmaTsas {
                qptype: RdmaQpType::from(pick("qptype", &["connected", "datagram"], 1)),
                prtype: RdmaPrType::from(pick(
                    "prtype",
                    &["not specified", "infiniband", "roce", "rocev2", "iwarp"],
                    1,
                )),
                cms: RdmaCms::from(pick("cms", &["cm"], 1)),
                pkey: 0,
            })
        }
        _ => Tsas::default(),
    };
    Some(DiscoveryLogEntry {
        trtype,
        adrfam: code::<AdrFam>(
            get("adrfam")?,
            &[
                ("pci", 0),
                ("ipv4", 1),
                ("ipv6", 2),
                ("infiniband", 3),
                ("fc", 4),
            ],
        )?,
        subtype: code::<SubType>(
            get("subtype")?,
            &[("referral", 1), ("nvme", 2), ("discovery", 3)],
        )?,
        treq: Treq(treq),
        portid: get("portid")?.parse().ok()?,
        cntlid: get("cntlid")?.parse().ok()?,
        asqsz: get("asqsz")?.parse().ok()?,
        eflags: EFlags(get("eflags")?.parse().ok()?),
        trsvcid: get("trsvcid")?.to_owned(),
        subnqn: get("subnqn")?.to_owned(),
        traddr: get("traddr")?.to_owned(),
        tsas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dict_round_trip() {
        for (trtype, tsas) in [
            (TrType::Tcp, Tsas::tcp(SecType::Tls13)),
            (TrType::Fc, Tsas::default()),
            (
                TrType::Rdma,
                Tsas::rdma(nvmf_proto::dlp::RdmaTsas {
                    qptype: RdmaQpType::Connected,
                    prtype: RdmaPrType::RoceV2,
                    cms: RdmaCms::RdmaCm,
                    pkey: 0,
                }),
            ),
        ] {
            let e = DiscoveryLogEntry {
                trtype,
                adrfam: AdrFam::Ipv6,
                subtype: SubType::Referral,
                treq: Treq(6),
                portid: 7,
                cntlid: 0xfffe,
                asqsz: 32,
                eflags: EFlags(3),
                trsvcid: "8009".into(),
                subnqn: "nqn.x".into(),
                traddr: "fd00::1".into(),
                tsas,
            };
            assert_eq!(from_dict(&to_dict(&e)), Some(e));
        }
        assert_eq!(from_dict(&[("trtype".into(), "tcp".into())]), None);
    }
}
