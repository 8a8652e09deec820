//! Emitting an NBFT in the one canonical layout `Nbft::emit` writes.

use std::net::IpAddr;

use super::parse::{expect, heap_text, missing, to_u64};
use super::{
    Nbft, NbftDiscovery, NbftHfi, NbftHost, NbftSecurity, NbftSubsystem, NidType, CONTROL_LEN,
    CONTROL_OFF, DISCOVERY_LEN, EXT_ASQSZ_VALID, EXT_VALID, HEADER_LEN, HFI_DEFAULT_ROUTE,
    HFI_DHCP_OVERRIDE, HFI_LEN, HFI_TCP_INFO_LEN, HOST_ID_CONFIGURED, HOST_LEN,
    HOST_NQN_CONFIGURED, HOST_OFF, HOST_PAH_SHIFT, ID_CONTROL, ID_DISCOVERY, ID_HFI,
    ID_HFI_TCP_INFO, ID_HOST, ID_SECURITY, ID_SSNS, ID_SSNS_EXT_INFO, IP_LEN, MIN_TABLE_LEN,
    SECURITY_LEN, SIGNATURE, SSNS_EXT_INFO_IN_USE, SSNS_EXT_INFO_LEN, SSNS_LEN,
    SSNS_TR_DATA_DIGEST, SSNS_TR_HDR_DIGEST, SSNS_TR_VALID, SSNS_VALID, TRTYPE_TCP, VALID,
};
use crate::types::TrType;
use crate::wire::{self, Charset, Out};
use crate::ProtoError;

/// A heap object pointer; the default (0, 0) means absent.
#[derive(Debug, Clone, Copy, Default)]
struct HeapObj {
    offset: u32,
    length: u16,
}

fn write_obj(w: &mut Out<'_>, off: usize, obj: HeapObj) -> Result<(), ProtoError> {
    w.u32(off, obj.offset)?;
    w.u16(off.saturating_add(4), obj.length)
}

/// The heap under construction: objects are appended in the order `emit`
/// allocates them, which makes the layout deterministic.
struct Heap {
    /// Table offset of the heap.
    base: usize,
    data: Vec<u8>,
}

impl Heap {
    /// Appends `bytes` (plus a NUL when `nul`, so a string is terminated the
    /// way libnvme wants; the object length excludes it). Empty = absent.
    fn alloc(
        &mut self,
        bytes: &[u8],
        nul: bool,
        what: &'static str,
    ) -> Result<HeapObj, ProtoError> {
        if bytes.is_empty() {
            return Ok(HeapObj::default());
        }
        let length = u16::try_from(bytes.len()).map_err(|_| ProtoError::FieldTooLong {
            field: what,
            max: usize::from(u16::MAX),
            len: bytes.len(),
        })?;
        let offset = table_offset(self.base.saturating_add(self.data.len()))?;
        self.data.extend_from_slice(bytes);
        if nul {
            self.data.push(0);
        }
        Ok(HeapObj { offset, length })
    }

    /// Appends a string after checking the parser would read it back.
    fn text(
        &mut self,
        text: &str,
        what: &'static str,
        charset: Charset,
    ) -> Result<HeapObj, ProtoError> {
        check_text(text, what, charset)?;
        self.alloc(text.as_bytes(), true, what)
    }

    fn opt_text(
        &mut self,
        text: Option<&str>,
        what: &'static str,
        charset: Charset,
    ) -> Result<HeapObj, ProtoError> {
        text.map_or(Ok(HeapObj::default()), |t| self.text(t, what, charset))
    }
}

fn table_offset(off: usize) -> Result<u32, ProtoError> {
    u32::try_from(off).map_err(|_| ProtoError::InvalidValue {
        what: "NBFT table length",
        value: to_u64(off),
        expected: "a table smaller than 4 GiB",
    })
}

/// A heap string must be non-empty (empty would read back as absent) and
/// decode to itself: printable, no NUL.
fn check_text(text: &str, what: &'static str, charset: Charset) -> Result<(), ProtoError> {
    if text.is_empty() {
        return Err(missing(what));
    }
    if text.contains('\0') {
        return Err(ProtoError::BadText {
            what,
            text: wire::escape(text.as_bytes()),
            reason: "a heap string cannot contain NUL",
        });
    }
    heap_text(text.as_bytes(), what, charset).map(|_| ())
}

/// The 16-byte form of an IP field: IPv4 as `::ffff:a.b.c.d`. An IPv6 value
/// that is itself IPv4-mapped would read back as IPv4, so it is refused.
fn ip_bytes(ip: IpAddr, what: &'static str) -> Result<[u8; IP_LEN], ProtoError> {
    match ip {
        IpAddr::V4(v4) => Ok(v4.to_ipv6_mapped().octets()),
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Err(ProtoError::BadText {
            what,
            text: v6.to_string(),
            reason: "an IPv4-mapped address must be given as IPv4",
        }),
        IpAddr::V6(v6) => Ok(v6.octets()),
    }
}

fn check_index(index: usize, pos: usize, what: &'static str) -> Result<(), ProtoError> {
    expect(
        to_u64(index),
        to_u64(pos.saturating_add(1)),
        what,
        "its position in the list + 1",
    )
}

pub(super) fn check_tcp(trtype: TrType, what: &'static str) -> Result<(), ProtoError> {
    expect(
        u64::from(u8::from(trtype)),
        u64::from(TRTYPE_TCP),
        what,
        "3 (tcp)",
    )
}

/// The 1-based table index of the HFI at 0-based position `pos`, which must
/// be present (the parser ignores references to absent HFIs).
fn hfi_ref(hfis: &[Option<NbftHfi>], pos: usize, what: &'static str) -> Result<u8, ProtoError> {
    u8::try_from(pos.saturating_add(1))
        .ok()
        .filter(|_| matches!(hfis.get(pos), Some(Some(_))))
        .ok_or(ProtoError::InvalidValue {
            what,
            value: to_u64(pos),
            expected: "the 0-based position of a present HFI",
        })
}

fn nonzero_opt(v: Option<u8>, what: &'static str) -> Result<u8, ProtoError> {
    match v {
        Some(0) => Err(ProtoError::InvalidValue {
            what,
            value: 0,
            expected: "Some(1..=255) or None (0 means none)",
        }),
        Some(v) => Ok(v),
        None => Ok(0),
    }
}

/// The descriptor count of a list, which the control stores in a u8.
fn list_count<T>(list: &[T], what: &'static str) -> Result<u8, ProtoError> {
    u8::try_from(list.len()).map_err(|_| ProtoError::InvalidValue {
        what,
        value: to_u64(list.len()),
        expected: "at most 255 descriptors",
    })
}

/// `buf[off..off + len]` for writing one structure.
fn region<'b>(
    buf: &'b mut [u8],
    off: usize,
    len: usize,
    what: &'static str,
) -> Result<Out<'b>, ProtoError> {
    let got = buf.len();
    let end = off.saturating_add(len);
    let sub = buf.get_mut(off..end).ok_or(ProtoError::TooShort {
        what,
        need: end,
        got,
    })?;
    Ok(Out::new(sub, what))
}

fn emit_host(host: &NbftHost, w: &mut Out<'_>, heap: &mut Heap) -> Result<(), ProtoError> {
    let nqn = heap.text(&host.nqn, "NBFT host NQN", Charset::Utf8)?;
    let mut flags = VALID | (host.primary_admin_host_flag.bits() << HOST_PAH_SHIFT);
    if host.host_id_configured {
        flags |= HOST_ID_CONFIGURED;
    }
    if host.host_nqn_configured {
        flags |= HOST_NQN_CONFIGURED;
    }
    w.u8(0, ID_HOST)?;
    w.u8(1, flags)?;
    w.bytes(2, &host.id)?;
    write_obj(w, 18, nqn)
}

fn emit_hfi(hfi: &NbftHfi, pos: usize, w: &mut Out<'_>, heap: &mut Heap) -> Result<(), ProtoError> {
    const INFO: &str = "NBFT HFI transport info";
    check_index(usize::from(hfi.index), pos, "NBFT HFI descriptor index")?;
    check_tcp(hfi.trtype, "NBFT HFI transport type")?;
    if hfi.dhcp_server_ipaddr.is_some() != hfi.dhcp_override {
        return Err(ProtoError::InvalidValue {
            what: "NBFT HFI DHCP server address",
            value: u64::from(hfi.dhcp_override),
            expected: "an address exactly when dhcp_override is set",
        });
    }
    let name = heap.opt_text(
        hfi.host_name.as_deref(),
        "NBFT HFI host name",
        Charset::Ascii,
    )?;
    let mut flags = VALID;
    if hfi.this_hfi_is_default_route {
        flags |= HFI_DEFAULT_ROUTE;
    }
    if hfi.dhcp_override {
        flags |= HFI_DHCP_OVERRIDE;
    }
    let mut info = [0u8; HFI_TCP_INFO_LEN];
    let mut i = Out::new(&mut info, INFO);
    i.u8(0, ID_HFI_TCP_INFO)?;
    i.u8(1, 1)?;
    i.u8(2, TRTYPE_TCP)?;
    i.u8(3, 1)?;
    i.u16(4, u16::from(hfi.index))?;
    i.u8(6, flags)?;
    i.u32(7, hfi.pci_sbdf)?;
    i.bytes(11, &hfi.mac)?;
    i.u16(17, hfi.vlan)?;
    i.u8(19, hfi.ip_origin)?;
    i.bytes(20, &ip_bytes(hfi.ipaddr, "NBFT HFI IP address")?)?;
    i.u8(36, hfi.subnet_mask_prefix)?;
    i.bytes(37, &ip_bytes(hfi.gateway_ipaddr, "NBFT HFI gateway")?)?;
    i.u16(54, hfi.route_metric)?;
    i.bytes(
        56,
        &ip_bytes(hfi.primary_dns_ipaddr, "NBFT HFI primary DNS")?,
    )?;
    i.bytes(
        72,
        &ip_bytes(hfi.secondary_dns_ipaddr, "NBFT HFI secondary DNS")?,
    )?;
    if let Some(dhcp) = hfi.dhcp_server_ipaddr {
        i.bytes(88, &ip_bytes(dhcp, "NBFT HFI DHCP server")?)?;
    }
    write_obj(&mut i, 104, name)?;
    let info_obj = heap.alloc(&info, false, INFO)?;

    w.u8(0, ID_HFI)?;
    w.u8(1, hfi.index)?;
    w.u8(2, VALID)?;
    w.u8(3, TRTYPE_TCP)?;
    write_obj(w, 16, info_obj)
}

fn emit_ssns(
    s: &NbftSubsystem,
    pos: usize,
    hfis: &[Option<NbftHfi>],
    w: &mut Out<'_>,
    heap: &mut Heap,
) -> Result<(), ProtoError> {
    check_index(usize::from(s.index), pos, "NBFT SSNS descriptor index")?;
    check_tcp(s.trtype, "NBFT SSNS transport type")?;
    if s.flags & (SSNS_VALID | SSNS_EXT_INFO_IN_USE) != 0 {
        return Err(ProtoError::InvalidValue {
            what: "NBFT SSNS flags",
            value: u64::from(s.flags),
            expected: "bits 0 and 4 clear (emit derives them)",
        });
    }
    let nid_type = u8::from(s.nid_type);
    if NidType::from(nid_type) != s.nid_type {
        return Err(ProtoError::InvalidValue {
            what: "NBFT SSNS NID type",
            value: u64::from(nid_type),
            expected: "Other(_) only for values other than 1-3",
        });
    }
    // Every HFI reference must name a present HFI, once, or the parser
    // would drop it (or the whole SSNS for the primary).
    let mut refs = Vec::with_capacity(s.hfi_indexes.len());
    for &p in &s.hfi_indexes {
        let index = hfi_ref(hfis, p, "NBFT SSNS HFI index")?;
        if refs.contains(&index) {
            return Err(ProtoError::InvalidValue {
                what: "NBFT SSNS HFI index",
                value: to_u64(p),
                expected: "each HFI named once",
            });
        }
        refs.push(index);
    }
    let Some((&primary, secondaries)) = refs.split_first() else {
        return Err(missing("NBFT SSNS primary HFI index"));
    };
    if !s.extended_info && (s.controller_id != 0 || s.asqsz != 0 || s.dhcp_root_path.is_some()) {
        return Err(ProtoError::InvalidValue {
            what: "NBFT SSNS extended info",
            value: 0,
            expected: "extended_info set when controller_id, asqsz or dhcp_root_path is given",
        });
    }

    let traddr = heap.alloc(
        &ip_bytes(s.traddr, "NBFT SSNS subsystem transport address")?,
        false,
        "NBFT SSNS subsystem transport address",
    )?;
    let trsvcid = heap.text(&s.trsvcid, "NBFT SSNS transport service id", Charset::Ascii)?;
    let secondary = heap.alloc(secondaries, false, "NBFT SSNS secondary HFI associations")?;
    let nqn = heap.text(&s.subsys_nqn, "NBFT SSNS subsystem NQN", Charset::Utf8)?;
    let mut flags = s.flags | SSNS_VALID;
    let ext = if s.extended_info {
        flags |= SSNS_EXT_INFO_IN_USE;
        let root = heap.opt_text(
            s.dhcp_root_path.as_deref(),
            "NBFT SSNS DHCP root path",
            Charset::Utf8,
        )?;
        let mut ext = [0u8; SSNS_EXT_INFO_LEN];
        let mut e = Out::new(&mut ext, "NBFT SSNS extended info");
        e.u8(0, ID_SSNS_EXT_INFO)?;
        e.u8(1, 1)?;
        e.u16(2, s.index)?;
        e.u32(
            4,
            if s.asqsz != 0 {
                EXT_VALID | EXT_ASQSZ_VALID
            } else {
                EXT_VALID
            },
        )?;
        e.u16(8, s.controller_id)?;
        e.u16(10, s.asqsz)?;
        write_obj(&mut e, 12, root)?;
        heap.alloc(&ext, false, "NBFT SSNS extended info")?
    } else {
        HeapObj::default()
    };
    let mut trflags = SSNS_TR_VALID;
    if s.pdu_header_digest_required {
        trflags |= SSNS_TR_HDR_DIGEST;
    }
    if s.data_digest_required {
        trflags |= SSNS_TR_DATA_DIGEST;
    }

    w.u8(0, ID_SSNS)?;
    w.u16(1, s.index)?;
    w.u16(3, flags)?;
    w.u8(5, TRTYPE_TCP)?;
    w.u16(6, trflags)?;
    w.u8(
        8,
        nonzero_opt(
            s.primary_discovery_ctrl_index,
            "NBFT SSNS primary discovery controller index",
        )?,
    )?;
    write_obj(w, 10, traddr)?;
    write_obj(w, 16, trsvcid)?;
    w.u16(22, s.subsys_port_id)?;
    w.u32(24, s.nsid)?;
    w.u8(28, nid_type)?;
    w.bytes(29, &s.nid)?;
    w.u8(
        45,
        nonzero_opt(s.security_index, "NBFT SSNS security descriptor index")?,
    )?;
    w.u8(46, primary)?;
    write_obj(w, 48, secondary)?;
    write_obj(w, 54, nqn)?;
    write_obj(w, 60, ext)
}

fn emit_security(
    s: &NbftSecurity,
    pos: usize,
    w: &mut Out<'_>,
    heap: &mut Heap,
) -> Result<(), ProtoError> {
    check_index(usize::from(s.index), pos, "NBFT security descriptor index")?;
    let objs = [
        (6, &s.channel_algorithms, "NBFT security channel algorithms"),
        (
            12,
            &s.auth_protocols,
            "NBFT security authentication protocols",
        ),
        (18, &s.cipher_suites, "NBFT security cipher suites"),
        (24, &s.dh_groups, "NBFT security DH groups"),
        (30, &s.hash_functions, "NBFT security hash functions"),
        (36, &s.key_path, "NBFT security key path"),
    ];
    w.u8(0, ID_SECURITY)?;
    w.u8(1, s.index)?;
    w.u16(2, s.flags)?;
    w.u8(4, s.secret_type)?;
    for (off, bytes, what) in objs {
        // NUL-terminated like the strings they normally are.
        let obj = heap.alloc(bytes, true, what)?;
        write_obj(w, off, obj)?;
    }
    Ok(())
}

fn emit_discovery(
    d: &NbftDiscovery,
    pos: usize,
    hfis: &[Option<NbftHfi>],
    w: &mut Out<'_>,
    heap: &mut Heap,
) -> Result<(), ProtoError> {
    check_index(usize::from(d.index), pos, "NBFT discovery descriptor index")?;
    let hfi = match d.hfi_index {
        None => 0,
        Some(p) => hfi_ref(hfis, p, "NBFT discovery HFI index")?,
    };
    let uri = heap.text(&d.uri, "NBFT discovery controller URI", Charset::Utf8)?;
    let nqn = heap.text(&d.nqn, "NBFT discovery controller NQN", Charset::Utf8)?;
    w.u8(0, ID_DISCOVERY)?;
    w.u8(1, VALID)?;
    w.u8(2, d.index)?;
    w.u8(3, hfi)?;
    w.u8(
        4,
        nonzero_opt(d.security_index, "NBFT discovery security index")?,
    )?;
    write_obj(w, 6, uri)?;
    write_obj(w, 12, nqn)
}

/// Where one descriptor array goes in the emitted table.
struct Placement {
    offset: usize,
    count: u8,
    stride: usize,
}

impl Placement {
    fn slot(&self, pos: usize) -> usize {
        self.offset.saturating_add(pos.saturating_mul(self.stride))
    }

    fn end(&self) -> usize {
        self.slot(usize::from(self.count))
    }

    /// The control descriptor's list offset: 0 for an empty list.
    fn list_offset(&self) -> Result<u32, ProtoError> {
        if self.count == 0 {
            Ok(0)
        } else {
            table_offset(self.offset)
        }
    }
}

impl Nbft {
    /// Emits the table in the canonical layout: header, control, host,
    /// HFI, SSNS, security and discovery arrays, then the heap, with heap
    /// objects in descriptor order and a correct checksum. `None` entries
    /// become zeroed (invalid) descriptors so positions survive.
    ///
    /// Refuses values the parser would not give back: an index that is not
    /// position + 1, a dangling or repeated HFI reference, empty or
    /// non-printable strings, a non-TCP transport, revisions other than 1.0,
    /// an invalid table (`valid` clear) with content, and so on.
    pub fn emit(&self) -> Result<Vec<u8>, ProtoError> {
        expect(
            u64::from(self.header.major_revision),
            1,
            "NBFT major revision",
            "1",
        )?;
        expect(
            u64::from(self.header.minor_revision),
            0,
            "NBFT minor revision",
            "0",
        )?;
        if !self.valid
            && (self.host != NbftHost::default()
                || !self.hfis.is_empty()
                || !self.subsystems.is_empty()
                || !self.security.is_empty()
                || !self.discovery.is_empty())
        {
            return Err(ProtoError::InvalidValue {
                what: "NBFT control valid flag",
                value: 0,
                expected: "set when the table has a host or descriptors",
            });
        }

        let hfi = Placement {
            offset: HOST_OFF + HOST_LEN,
            count: list_count(&self.hfis, "NBFT HFI descriptor count")?,
            stride: HFI_LEN,
        };
        let ssns = Placement {
            offset: hfi.end(),
            count: list_count(&self.subsystems, "NBFT SSNS descriptor count")?,
            stride: SSNS_LEN,
        };
        let sec = Placement {
            offset: ssns.end(),
            count: list_count(&self.security, "NBFT security descriptor count")?,
            stride: SECURITY_LEN,
        };
        let disc = Placement {
            offset: sec.end(),
            count: list_count(&self.discovery, "NBFT discovery descriptor count")?,
            stride: DISCOVERY_LEN,
        };
        let heap_off = if self.valid {
            disc.end()
        } else {
            MIN_TABLE_LEN
        };
        let mut table = vec![0u8; heap_off];
        let mut heap = Heap {
            base: heap_off,
            data: Vec::new(),
        };

        let sig = heap.alloc(
            &self.header.driver_dev_path_sig,
            false,
            "NBFT driver device path signature",
        )?;
        if self.valid {
            emit_host(
                &self.host,
                &mut region(&mut table, HOST_OFF, HOST_LEN, "NBFT host descriptor")?,
                &mut heap,
            )?;
            for (pos, h) in self.hfis.iter().enumerate() {
                if let Some(h) = h {
                    let mut w = region(&mut table, hfi.slot(pos), HFI_LEN, "NBFT HFI descriptor")?;
                    emit_hfi(h, pos, &mut w, &mut heap)?;
                }
            }
            for (pos, s) in self.subsystems.iter().enumerate() {
                if let Some(s) = s {
                    let mut w =
                        region(&mut table, ssns.slot(pos), SSNS_LEN, "NBFT SSNS descriptor")?;
                    emit_ssns(s, pos, &self.hfis, &mut w, &mut heap)?;
                }
            }
            for (pos, s) in self.security.iter().enumerate() {
                if let Some(s) = s {
                    let mut w = region(
                        &mut table,
                        sec.slot(pos),
                        SECURITY_LEN,
                        "NBFT security descriptor",
                    )?;
                    emit_security(s, pos, &mut w, &mut heap)?;
                }
            }
            for (pos, d) in self.discovery.iter().enumerate() {
                if let Some(d) = d {
                    let mut w = region(
                        &mut table,
                        disc.slot(pos),
                        DISCOVERY_LEN,
                        "NBFT discovery descriptor",
                    )?;
                    emit_discovery(d, pos, &self.hfis, &mut w, &mut heap)?;
                }
            }
        }

        let mut c = region(
            &mut table,
            CONTROL_OFF,
            CONTROL_LEN,
            "NBFT control descriptor",
        )?;
        c.u8(0, ID_CONTROL)?;
        c.u8(1, 1)?;
        c.u8(2, 0)?;
        c.u16(4, 64)?;
        if self.valid {
            c.u8(6, VALID)?;
            write_obj(
                &mut c,
                8,
                HeapObj {
                    offset: table_offset(HOST_OFF)?,
                    length: 32,
                },
            )?;
            c.u8(14, 1)?;
            for (off, p) in [(16, &hfi), (24, &ssns), (32, &sec), (40, &disc)] {
                c.u32(off, p.list_offset()?)?;
                c.u16(off + 4, u16::try_from(p.stride).unwrap_or(u16::MAX))?;
                c.u8(off + 6, 1)?;
                c.u8(off + 7, p.count)?;
            }
        }

        let heap_len = table_offset(heap.data.len())?;
        table.extend_from_slice(&heap.data);
        let length = table_offset(table.len())?;
        let mut h = region(&mut table, 0, HEADER_LEN, "NBFT header")?;
        h.bytes(0, SIGNATURE)?;
        h.u32(4, length)?;
        h.u8(8, self.header.major_revision)?;
        h.bytes(10, &self.header.oem_id)?;
        h.bytes(16, &self.header.oem_table_id)?;
        h.u32(24, self.header.oem_revision)?;
        h.bytes(28, &self.header.creator_id)?;
        h.u32(32, self.header.creator_revision)?;
        h.u32(36, table_offset(heap_off)?)?;
        h.u32(40, heap_len)?;
        write_obj(&mut h, 44, sig)?;
        h.u8(50, self.header.minor_revision)?;
        let sum = table.iter().fold(0u8, |acc, &b| acc.wrapping_add(b));
        region(&mut table, 9, 1, "NBFT header")?.u8(0, 0u8.wrapping_sub(sum))?;
        Ok(table)
    }
}
