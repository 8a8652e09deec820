//! The numeric fields of discovery structures, with unknown values kept.
//!
//! Each type has two spellings: `stas_str` is what nvme-stas puts on D-Bus
//! (libnvme's Python binding, docs/upstream.md §16.4.3) and `cli_str` what
//! nvme-cli prints (docs/kernel-interface.md §4.3). They differ (`nvme` vs
//! `nvme subsystem`), and both are needed: one for D-Bus compatibility, one for
//! the differential test against nvme-cli.

use std::borrow::Cow;

macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $var:ident = $val:literal => $stas:literal, $cli:literal; )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $var, )*
            /// A value this crate has no name for, kept as received.
            Other(u8),
        }

        impl From<u8> for $name {
            fn from(v: u8) -> Self {
                match v {
                    $( $val => Self::$var, )*
                    other => Self::Other(other),
                }
            }
        }

        /// The value 0, whatever it means for this field.
        impl Default for $name {
            fn default() -> Self {
                Self::from(0)
            }
        }

        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                match v {
                    $( $name::$var => $val, )*
                    $name::Other(other) => other,
                }
            }
        }

        impl $name {
            /// The spelling nvme-stas uses on D-Bus; unknown values as decimal.
            pub fn stas_str(self) -> Cow<'static, str> {
                match self {
                    $( Self::$var => Cow::Borrowed($stas), )*
                    Self::Other(v) => Cow::Owned(v.to_string()),
                }
            }

            /// The spelling nvme-cli prints; unknown values as `unrecognized`.
            pub fn cli_str(self) -> &'static str {
                match self {
                    $( Self::$var => $cli, )*
                    Self::Other(_) => "unrecognized",
                }
            }
        }
    };
}

code_enum! {
    /// Transport type (TRTYPE).
    TrType {
        /// 0: not specified.
        Unspecified = 0 => "unspecified", "unrecognized";
        /// 1: RDMA.
        Rdma = 1 => "rdma", "rdma";
        /// 2: Fibre Channel.
        Fc = 2 => "fc", "fc";
        /// 3: TCP.
        Tcp = 3 => "tcp", "tcp";
        /// 254: intra-host (loop).
        Loop = 254 => "loop", "loop";
    }
}

code_enum! {
    /// Address family (ADRFAM).
    AdrFam {
        /// 0: PCIe.
        Pci = 0 => "pci", "pci";
        /// 1: IPv4.
        Ipv4 = 1 => "ipv4", "ipv4";
        /// 2: IPv6.
        Ipv6 = 2 => "ipv6", "ipv6";
        /// 3: InfiniBand.
        Ib = 3 => "infiniband", "infiniband";
        /// 4: Fibre Channel.
        Fc = 4 => "fc", "fibre-channel";
        /// 254: intra-host. Neither libnvme table names it.
        IntraHost = 254 => "254", "unrecognized";
    }
}

code_enum! {
    /// Subsystem type (SUBTYPE) of a discovery log entry.
    SubType {
        /// 1: a referral to another discovery subsystem.
        Referral = 1 => "referral", "discovery subsystem referral";
        /// 2: an NVM (I/O) subsystem.
        Nvme = 2 => "nvme", "nvme subsystem";
        /// 3: the discovery subsystem answering (TP8014).
        CurrentDiscovery = 3 => "discovery", "current discovery subsystem";
    }
}

code_enum! {
    /// TCP security type (TSAS byte 0 for TCP).
    SecType {
        /// 0: no security.
        None = 0 => "none", "none";
        /// 1: TLS 1.2.
        Tls12 = 1 => "tls", "tls";
        /// 2: TLS 1.3.
        Tls13 = 2 => "tls1.3", "tls13";
    }
}

code_enum! {
    /// RDMA queue pair service type (TSAS byte 0 for RDMA).
    RdmaQpType {
        /// 1: reliable connected.
        Connected = 1 => "connected", "connected";
        /// 2: reliable datagram.
        Datagram = 2 => "datagram", "datagram";
    }
}

code_enum! {
    /// RDMA provider type (TSAS byte 1 for RDMA).
    RdmaPrType {
        /// 1: not specified.
        NotSpecified = 1 => "not specified", "not specified";
        /// 2: InfiniBand.
        Infiniband = 2 => "infiniband", "infiniband";
        /// 3: RoCE.
        Roce = 3 => "roce", "roce";
        /// 4: RoCE v2.
        RoceV2 = 4 => "rocev2", "roce-v2";
        /// 5: iWARP.
        Iwarp = 5 => "iwarp", "iwarp";
    }
}

code_enum! {
    /// RDMA connection management service (TSAS byte 2 for RDMA).
    RdmaCms {
        /// 1: RDMA_CM.
        RdmaCm = 1 => "cm", "rdma-cm";
    }
}

code_enum! {
    /// Controller type (Identify CNTRLTYPE, sysfs `cntrltype`).
    CntrlType {
        /// 0: not reported.
        NotReported = 0 => "reserved", "reserved";
        /// 1: I/O controller.
        Io = 1 => "io", "io";
        /// 2: discovery controller.
        Discovery = 2 => "discovery", "discovery";
        /// 3: administrative controller.
        Admin = 3 => "admin", "admin";
    }
}

code_enum! {
    /// Discovery controller type (Identify DCTYPE, sysfs `dctype`).
    DcType {
        /// 0: not reported.
        None = 0 => "none", "none";
        /// 1: direct discovery controller.
        Ddc = 1 => "ddc", "ddc";
        /// 2: central discovery controller.
        Cdc = 2 => "cdc", "cdc";
    }
}

/// Transport requirements (TREQ): secure-channel bits 1:0 and bit 2, "SQ flow
/// control disable supported". Kept as the raw byte so reserved bits survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Treq(pub u8);

impl Treq {
    /// Bit 2: the controller can run with SQ flow control disabled.
    pub const SQFLOW_DISABLE_SUPPORTED: u8 = 0x04;

    /// Secure channel requirement, bits 1:0 (0 not specified, 1 required, 2 not required).
    pub fn secure_channel(self) -> u8 {
        self.0 & 0x03
    }

    /// The nvme-stas spelling: the four single values by name, anything else decimal.
    pub fn stas_str(self) -> Cow<'static, str> {
        match self.0 {
            0 => Cow::Borrowed("not specified"),
            1 => Cow::Borrowed("required"),
            2 => Cow::Borrowed("not required"),
            4 => Cow::Borrowed("disable sqflow"),
            v => Cow::Owned(v.to_string()),
        }
    }

    /// The nvme-cli spelling: secure channel, then the flow-control note.
    pub fn cli_str(self) -> String {
        let base = match self.secure_channel() {
            0 => "not specified",
            1 => "required",
            2 => "not required",
            _ => "unrecognized",
        };
        if self.0 & Self::SQFLOW_DISABLE_SUPPORTED != 0 {
            format!("{base}, sq flow control disable supported")
        } else {
            base.to_owned()
        }
    }
}

/// Entry flags (EFLAGS), kept raw so unknown bits survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EFlags(pub u16);

impl EFlags {
    /// Bit 0: following this entry returns the same information as others carrying it.
    pub const DUPRETINFO: u16 = 0x0001;
    /// Bit 1: explicit persistent connections supported.
    pub const EPCSD: u16 = 0x0002;
    /// Bit 2: no CDC connectivity (only meaningful from a CDC).
    pub const NCC: u16 = 0x0004;

    /// Whether all bits of `flag` are set.
    pub fn contains(self, flag: u16) -> bool {
        self.0 & flag == flag
    }

    /// The nvme-stas spelling: decimal.
    pub fn stas_str(self) -> String {
        self.0.to_string()
    }

    /// The nvme-cli spelling: names joined by `, ` in the order EPCSD,
    /// DUPRETINFO, NCC; `none` when no known bit is set.
    pub fn cli_str(self) -> String {
        let names: Vec<&str> = [
            (Self::EPCSD, "explicit discovery connections"),
            (Self::DUPRETINFO, "duplicate discovery information"),
            (Self::NCC, "no cdc connectivity"),
        ]
        .iter()
        .filter(|(bit, _)| self.contains(*bit))
        .map(|(_, name)| *name)
        .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_round_trip_and_unknown_are_kept() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(TrType::from(v)), v);
            assert_eq!(u8::from(AdrFam::from(v)), v);
            assert_eq!(u8::from(SubType::from(v)), v);
            assert_eq!(u8::from(SecType::from(v)), v);
            assert_eq!(u8::from(DcType::from(v)), v);
        }
        assert_eq!(TrType::from(9), TrType::Other(9));
    }

    #[test]
    fn stas_spellings() {
        assert_eq!(TrType::Tcp.stas_str(), "tcp");
        assert_eq!(TrType::Unspecified.stas_str(), "unspecified");
        assert_eq!(TrType::Other(7).stas_str(), "7");
        assert_eq!(AdrFam::Fc.stas_str(), "fc");
        assert_eq!(AdrFam::IntraHost.stas_str(), "254");
        assert_eq!(SubType::Nvme.stas_str(), "nvme");
        assert_eq!(SubType::Referral.stas_str(), "referral");
        assert_eq!(SubType::CurrentDiscovery.stas_str(), "discovery");
        assert_eq!(SubType::Other(0).stas_str(), "0");
        assert_eq!(SecType::Tls13.stas_str(), "tls1.3");
        assert_eq!(RdmaPrType::RoceV2.stas_str(), "rocev2");
        assert_eq!(RdmaCms::RdmaCm.stas_str(), "cm");
        assert_eq!(Treq(0).stas_str(), "not specified");
        assert_eq!(Treq(2).stas_str(), "not required");
        assert_eq!(Treq(4).stas_str(), "disable sqflow");
        assert_eq!(Treq(6).stas_str(), "6");
        assert_eq!(EFlags(6).stas_str(), "6");
        assert_eq!(CntrlType::Discovery.stas_str(), "discovery");
        assert_eq!(DcType::Cdc.stas_str(), "cdc");
        assert_eq!(DcType::Other(3).stas_str(), "3");
    }

    #[test]
    fn cli_spellings() {
        assert_eq!(TrType::Other(9).cli_str(), "unrecognized");
        assert_eq!(AdrFam::Fc.cli_str(), "fibre-channel");
        assert_eq!(AdrFam::IntraHost.cli_str(), "unrecognized");
        assert_eq!(SubType::Nvme.cli_str(), "nvme subsystem");
        assert_eq!(
            SubType::CurrentDiscovery.cli_str(),
            "current discovery subsystem"
        );
        assert_eq!(SubType::Referral.cli_str(), "discovery subsystem referral");
        assert_eq!(SecType::Tls13.cli_str(), "tls13");
        assert_eq!(RdmaPrType::RoceV2.cli_str(), "roce-v2");
        assert_eq!(RdmaCms::RdmaCm.cli_str(), "rdma-cm");
        assert_eq!(
            Treq(6).cli_str(),
            "not required, sq flow control disable supported"
        );
        assert_eq!(Treq(3).cli_str(), "unrecognized");
        assert_eq!(EFlags(0).cli_str(), "none");
        assert_eq!(
            EFlags(7).cli_str(),
            "explicit discovery connections, duplicate discovery information, no cdc connectivity"
        );
        assert_eq!(EFlags(0x4).cli_str(), "no cdc connectivity");
        assert_eq!(EFlags(0x8).cli_str(), "none");
    }
}
