//! mDNS / DNS-SD messages (RFC 6762, RFC 6763) as the TP8009 zero-touch
//! discovery of NVMe-oF discovery controllers uses them, and the TP8009
//! reading of their TXT records (docs/behaviour.md §10.3).
//!
//! The DNS wire codec is the `simple-dns` crate (the simple-mdns family the
//! user named). It fits: its reader is bounds-checked, compression pointers
//! may only point backwards (so they cannot loop), names are capped at 255
//! bytes, and the fuzz target `mdns` found no panic in it. Where it does not
//! fit, this module closes the gap instead of replacing it:
//!
//! * It pre-allocates `Vec::with_capacity(count)` from the header's section
//!   counts, so a 12-byte packet claiming 65535 records of every kind makes
//!   it allocate megabytes before failing. [`Message::parse`] first checks
//!   that the counts can fit the packet (each question takes at least 5
//!   bytes, each record 11) and that the packet is at most
//!   [`MAX_MESSAGE_LEN`].
//! * A chain of compression pointers costs one step per pointer with no cap
//!   of its own; the length cap above bounds the work per packet.
//! * It writes label lengths as `len as u8` without checking; names built
//!   here ([`DnsName::from_labels`]) are validated first.
//! * TXT strings are exposed only as `key[=value]` pairs, dropping strings
//!   with an empty key; TP8009 ignores those anyway (§10.3), so
//!   [`RData::Txt`] holds the reconstructed `key=value` items.
//! * Known answers and the TC bit of a multi-packet query (RFC 6762 §7.2)
//!   are done here ([`query_packets`]); simple-dns builds any packet but
//!   has no notion of splitting one.
//!
//! Names are kept as raw labels and compared case-insensitively (ASCII), as
//! DNS requires.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use simple_dns as dns;

use crate::ProtoError;

/// The mDNS UDP port.
pub const MDNS_PORT: u16 = 5353;
/// The IPv4 mDNS group.
pub const MDNS_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
/// The IPv6 link-local mDNS group.
pub const MDNS_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);
/// The largest mDNS message, IP and UDP headers included (RFC 6762 §17).
pub const MAX_MESSAGE_LEN: usize = 9000;
/// What a query should stay under to fit an Ethernet frame without
/// fragmenting: 1500 - 40 (IPv6) - 8 (UDP).
pub const QUERY_TARGET_LEN: usize = 1452;
/// The DNS-SD service types TP8009 discovery controllers announce: `_tcp`
/// for NVMe/TCP, `_udp` for RoCE (docs/behaviour.md §10.1).
pub const NVME_DISC_SERVICE_TYPES: [&str; 2] = ["_nvme-disc._tcp.local", "_nvme-disc._udp.local"];

const HEADER_LEN: usize = 12;
const MIN_QUESTION_LEN: usize = 5; // root name + type + class
const MIN_RECORD_LEN: usize = 11; // root name + type + class + ttl + rdlength
const MAX_LABEL_LEN: usize = 63;
const MAX_NAME_LEN: usize = 255;

/// A domain name: its labels, compared ASCII-case-insensitively.
#[derive(Clone, Default)]
pub struct DnsName {
    labels: Vec<Vec<u8>>,
}

impl DnsName {
    /// A name from its labels; fails when a label is empty or longer than 63
    /// bytes, or the name longer than 255 bytes on the wire.
    pub fn from_labels<L: AsRef<[u8]>>(labels: &[L]) -> Result<Self, ProtoError> {
        let mut wire_len = 1usize;
        let mut out = Vec::with_capacity(labels.len());
        for l in labels {
            let l = l.as_ref();
            if l.is_empty() || l.len() > MAX_LABEL_LEN {
                return Err(ProtoError::BadText {
                    what: "DNS label",
                    text: crate::escape(l),
                    reason: "a label must be 1 to 63 bytes long",
                });
            }
            wire_len = wire_len.saturating_add(l.len()).saturating_add(1);
            out.push(l.to_vec());
        }
        if wire_len > MAX_NAME_LEN {
            return Err(ProtoError::FieldTooLong {
                field: "DNS name",
                max: MAX_NAME_LEN,
                len: wire_len,
            });
        }
        Ok(Self { labels: out })
    }

    /// A name from dotted text without escapes (`_nvme-disc._tcp.local`);
    /// a trailing dot is allowed.
    pub fn parse_dotted(text: &str) -> Result<Self, ProtoError> {
        let text = text.strip_suffix('.').unwrap_or(text);
        if text.is_empty() {
            return Ok(Self::default());
        }
        let labels: Vec<&str> = text.split('.').collect();
        Self::from_labels(&labels)
    }

    /// `label` prepended to `self`: an instance name under a service type.
    pub fn child(&self, label: &[u8]) -> Result<Self, ProtoError> {
        let mut labels = Vec::with_capacity(self.labels.len().saturating_add(1));
        labels.push(label.to_vec());
        labels.extend(self.labels.iter().cloned());
        Self::from_labels(&labels)
    }

    /// The labels, as received.
    pub fn labels(&self) -> &[Vec<u8>] {
        &self.labels
    }

    /// The first label (an instance name's own part), if any.
    pub fn first_label(&self) -> Option<&[u8]> {
        self.labels.first().map(Vec::as_slice)
    }

    /// The name without its first label.
    pub fn parent(&self) -> Self {
        Self {
            labels: self.labels.iter().skip(1).cloned().collect(),
        }
    }

    /// Bytes this name takes on the wire, uncompressed.
    pub fn wire_len(&self) -> usize {
        self.labels
            .iter()
            .fold(1usize, |n, l| n.saturating_add(l.len()).saturating_add(1))
    }

    fn key(&self) -> impl Iterator<Item = impl Iterator<Item = u8> + '_> + '_ {
        self.labels
            .iter()
            .map(|l| l.iter().map(u8::to_ascii_lowercase))
    }

    fn to_dns(&self) -> Result<dns::Name<'_>, ProtoError> {
        let labels: Vec<dns::Label<'_>> = self
            .labels
            .iter()
            .map(|l| dns::Label::new_unchecked(l.as_slice()))
            .collect();
        Ok(dns::Name::new_with_labels(&labels))
    }

    fn from_dns(name: &dns::Name<'_>) -> Self {
        Self {
            labels: name.as_bytes().map(<[u8]>::to_vec).collect(),
        }
    }
}

impl PartialEq for DnsName {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for DnsName {}

impl PartialOrd for DnsName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DnsName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let mut a = self.key();
        let mut b = other.key();
        loop {
            match (a.next(), b.next()) {
                (None, None) => return std::cmp::Ordering::Equal,
                (None, Some(_)) => return std::cmp::Ordering::Less,
                (Some(_), None) => return std::cmp::Ordering::Greater,
                (Some(x), Some(y)) => match x.cmp(y) {
                    std::cmp::Ordering::Equal => {}
                    o => return o,
                },
            }
        }
    }
}

impl std::hash::Hash for DnsName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for l in self.key() {
            let l: Vec<u8> = l.collect();
            l.hash(state);
        }
    }
}

/// The presentation form: labels joined by dots, with `.` and `\` inside a
/// label escaped and other non-printable bytes as `\DDD` (RFC 6763 §4.3).
/// UTF-8 (instance names are UTF-8 by RFC 6763) is shown as is.
impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, label) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{}", label_text(label))?;
        }
        Ok(())
    }
}

impl fmt::Debug for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// One label as text: valid UTF-8 with `.` and `\` escaped, other bytes
/// that are not printable as `\DDD`.
pub fn label_text(label: &[u8]) -> String {
    let text = String::from_utf8_lossy(label);
    let mut out = String::with_capacity(label.len());
    if matches!(text, std::borrow::Cow::Borrowed(_)) {
        for c in text.chars() {
            match c {
                '.' => out.push_str("\\."),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\{b:03}"));
                    }
                }
                c => out.push(c),
            }
        }
    } else {
        for &b in label {
            match b {
                b'.' => out.push_str("\\."),
                b'\\' => out.push_str("\\\\"),
                0x21..=0x7e | b' ' => out.push(char::from(b)),
                b => out.push_str(&format!("\\{b:03}")),
            }
        }
    }
    out
}

/// A DNS record type, as far as mDNS discovery cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Pointer (DNS-SD: service type → instance).
    Ptr,
    /// Service location (instance → host, port).
    Srv,
    /// Text (TP8009: `p=`, `nqn=`).
    Txt,
    /// Any type (questions only).
    Any,
    /// Anything else, by number.
    Other(u16),
}

impl RecordType {
    /// The type's number.
    pub fn code(self) -> u16 {
        match self {
            Self::A => 1,
            Self::Ptr => 12,
            Self::Txt => 16,
            Self::Aaaa => 28,
            Self::Srv => 33,
            Self::Any => 255,
            Self::Other(c) => c,
        }
    }

    /// The type with that number.
    pub fn from_code(code: u16) -> Self {
        match code {
            1 => Self::A,
            12 => Self::Ptr,
            16 => Self::Txt,
            28 => Self::Aaaa,
            33 => Self::Srv,
            255 => Self::Any,
            c => Self::Other(c),
        }
    }
}

/// A question.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Question {
    /// The name asked about.
    pub name: DnsName,
    /// The type asked for.
    pub qtype: RecordType,
    /// The QU bit: the querier asks for a unicast reply (RFC 6762 §5.4).
    pub unicast_response: bool,
}

/// The data of a record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RData {
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
    /// Pointer target.
    Ptr(DnsName),
    /// Service location.
    Srv {
        /// Priority (lower first).
        priority: u16,
        /// Weight among equal priorities.
        weight: u16,
        /// TCP/UDP port.
        port: u16,
        /// Host name to resolve with A/AAAA.
        target: DnsName,
    },
    /// Text items, `key=value` or `key` (items with an empty key are not kept).
    Txt(Vec<Vec<u8>>),
    /// A record of another type; its data is not kept.
    Other(u16),
}

impl RData {
    /// The record type of this data.
    pub fn rtype(&self) -> RecordType {
        match self {
            Self::A(_) => RecordType::A,
            Self::Aaaa(_) => RecordType::Aaaa,
            Self::Ptr(_) => RecordType::Ptr,
            Self::Srv { .. } => RecordType::Srv,
            Self::Txt(_) => RecordType::Txt,
            Self::Other(c) => RecordType::from_code(*c),
        }
    }

    /// Bytes the data takes on the wire, uncompressed.
    fn wire_len(&self) -> usize {
        match self {
            Self::A(_) => 4,
            Self::Aaaa(_) => 16,
            Self::Ptr(n) => n.wire_len(),
            Self::Srv { target, .. } => target.wire_len().saturating_add(6),
            Self::Txt(items) => items
                .iter()
                .fold(0usize, |n, i| n.saturating_add(i.len()).saturating_add(1))
                .max(1),
            Self::Other(_) => 0,
        }
    }
}

/// A resource record (class IN).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Record {
    /// Owner name.
    pub name: DnsName,
    /// Time to live in seconds; 0 is a goodbye (RFC 6762 §10.1).
    pub ttl: u32,
    /// The cache-flush bit: this record replaces others of its name and type (RFC 6762 §10.2).
    pub cache_flush: bool,
    /// The data.
    pub data: RData,
}

impl Record {
    /// Bytes the record takes on the wire, uncompressed.
    pub fn wire_len(&self) -> usize {
        self.name
            .wire_len()
            .saturating_add(10)
            .saturating_add(self.data.wire_len())
    }
}

/// A DNS message as mDNS uses it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Message ID (0 in multicast mDNS).
    pub id: u16,
    /// QR: a response rather than a query.
    pub response: bool,
    /// TC: in a query, more known answers follow in the next packet (RFC 6762 §7.2).
    pub truncated: bool,
    /// Questions.
    pub questions: Vec<Question>,
    /// Answer section (in a query: the known answers).
    pub answers: Vec<Record>,
    /// Authority section (probes' proposed records).
    pub authority: Vec<Record>,
    /// Additional section.
    pub additional: Vec<Record>,
}

fn dns_err(what: &'static str, e: &dns::SimpleDnsError) -> ProtoError {
    ProtoError::Malformed {
        what,
        reason: format!("{e:?}"),
    }
}

impl Message {
    /// Parses a message received from the network. Any input gives a
    /// message or an error, never a panic; the work is bounded by
    /// [`MAX_MESSAGE_LEN`].
    pub fn parse(buf: &[u8]) -> Result<Self, ProtoError> {
        const WHAT: &str = "mDNS message";
        if buf.len() > MAX_MESSAGE_LEN {
            return Err(ProtoError::FieldTooLong {
                field: WHAT,
                max: MAX_MESSAGE_LEN,
                len: buf.len(),
            });
        }
        let header = crate::wire::slice(buf, 0, HEADER_LEN, WHAT)?;
        let count = |i: usize| -> usize {
            let hi = header.get(i).copied().unwrap_or(0);
            let lo = header.get(i.saturating_add(1)).copied().unwrap_or(0);
            usize::from(u16::from_be_bytes([hi, lo]))
        };
        let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
        let need = HEADER_LEN
            .saturating_add(qd.saturating_mul(MIN_QUESTION_LEN))
            .saturating_add(
                an.saturating_add(ns)
                    .saturating_add(ar)
                    .saturating_mul(MIN_RECORD_LEN),
            );
        if need > buf.len() {
            return Err(ProtoError::TooShort {
                what: "mDNS message (its section counts)",
                need,
                got: buf.len(),
            });
        }
        let packet = dns::Packet::parse(buf).map_err(|e| dns_err(WHAT, &e))?;
        let questions = packet
            .questions
            .iter()
            .map(|q| Question {
                name: DnsName::from_dns(&q.qname),
                qtype: RecordType::from_code(u16::from(q.qtype)),
                unicast_response: q.unicast_response,
            })
            .collect();
        let records = |rrs: &[dns::ResourceRecord<'_>]| -> Vec<Record> {
            rrs.iter().map(record_from_dns).collect()
        };
        Ok(Self {
            id: packet.id(),
            response: packet.has_flags(dns::PacketFlag::RESPONSE),
            truncated: packet.has_flags(dns::PacketFlag::TRUNCATION),
            questions,
            answers: records(&packet.answers),
            authority: records(&packet.name_servers),
            additional: records(&packet.additional_records),
        })
    }

    /// The wire form, names compressed. Records of type [`RData::Other`]
    /// cannot be emitted (their data was not kept).
    pub fn emit(&self) -> Result<Vec<u8>, ProtoError> {
        let mut packet = if self.response {
            let mut p = dns::Packet::new_reply(self.id);
            // mDNS responses are authoritative (RFC 6762 §18.4).
            p.set_flags(dns::PacketFlag::AUTHORITATIVE_ANSWER);
            p
        } else {
            dns::Packet::new_query(self.id)
        };
        if self.truncated {
            packet.set_flags(dns::PacketFlag::TRUNCATION);
        }
        for q in &self.questions {
            let qtype = dns::QTYPE::try_from(q.qtype.code())
                .map_err(|e| dns_err("mDNS question type", &e))?;
            packet.questions.push(dns::Question::new(
                q.name.to_dns()?,
                qtype,
                dns::QCLASS::CLASS(dns::CLASS::IN),
                q.unicast_response,
            ));
        }
        for r in &self.answers {
            packet.answers.push(record_to_dns(r)?);
        }
        for r in &self.authority {
            packet.name_servers.push(record_to_dns(r)?);
        }
        for r in &self.additional {
            packet.additional_records.push(record_to_dns(r)?);
        }
        let out = packet
            .build_bytes_vec_compressed()
            .map_err(|e| dns_err("mDNS message (emit)", &e))?;
        if out.len() > MAX_MESSAGE_LEN {
            return Err(ProtoError::FieldTooLong {
                field: "mDNS message",
                max: MAX_MESSAGE_LEN,
                len: out.len(),
            });
        }
        Ok(out)
    }

    /// Answers, authority and additional records, in that order.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.answers
            .iter()
            .chain(&self.authority)
            .chain(&self.additional)
    }
}

fn record_from_dns(rr: &dns::ResourceRecord<'_>) -> Record {
    use dns::rdata::RData as D;
    let data = match &rr.rdata {
        D::A(a) => RData::A(Ipv4Addr::from(a.address)),
        D::AAAA(a) => RData::Aaaa(Ipv6Addr::from(a.address)),
        D::PTR(p) => RData::Ptr(DnsName::from_dns(&p.0)),
        D::SRV(s) => RData::Srv {
            priority: s.priority,
            weight: s.weight,
            port: s.port,
            target: DnsName::from_dns(&s.target),
        },
        D::TXT(t) => RData::Txt(
            t.iter_raw()
                .map(|(k, v)| match v {
                    Some(v) => [k, b"=", v].concat(),
                    None => k.to_vec(),
                })
                .collect(),
        ),
        D::Empty(dns::TYPE::TXT) => RData::Txt(Vec::new()),
        other => RData::Other(u16::from(other.type_code())),
    };
    Record {
        name: DnsName::from_dns(&rr.name),
        ttl: rr.ttl,
        cache_flush: rr.cache_flush,
        data,
    }
}

fn record_to_dns(r: &Record) -> Result<dns::ResourceRecord<'_>, ProtoError> {
    use dns::rdata::RData as D;
    let data = match &r.data {
        RData::A(a) => D::A(dns::rdata::A::from(*a)),
        RData::Aaaa(a) => D::AAAA(dns::rdata::AAAA::from(*a)),
        RData::Ptr(n) => D::PTR(dns::rdata::PTR(n.to_dns()?)),
        RData::Srv {
            priority,
            weight,
            port,
            target,
        } => D::SRV(dns::rdata::SRV {
            priority: *priority,
            weight: *weight,
            port: *port,
            target: target.to_dns()?,
        }),
        RData::Txt(items) => {
            let mut txt = dns::rdata::TXT::new();
            for i in items {
                let s = dns::CharacterString::new(i).map_err(|_| ProtoError::FieldTooLong {
                    field: "TXT item",
                    max: 255,
                    len: i.len(),
                })?;
                txt.add_char_string(s);
            }
            D::TXT(txt)
        }
        RData::Other(code) => {
            return Err(ProtoError::InvalidValue {
                what: "mDNS record to emit",
                value: u64::from(*code),
                expected: "A, AAAA, PTR, SRV or TXT data",
            })
        }
    };
    Ok(
        dns::ResourceRecord::new(r.name.to_dns()?, dns::CLASS::IN, r.ttl, data)
            .with_cache_flush(r.cache_flush),
    )
}

/// The packets of one query: `questions` with as many `known_answers` as
/// fit in `max_len` bytes; the rest follow in further packets holding only
/// known answers, every packet but the last with the TC bit set (RFC 6762
/// §7.2). Sizes are estimated uncompressed, so each packet stays under
/// `max_len`. The questions alone must fit.
pub fn query_packets(
    questions: &[Question],
    known_answers: &[Record],
    max_len: usize,
) -> Result<Vec<Vec<u8>>, ProtoError> {
    let question_len = questions.iter().fold(HEADER_LEN, |n, q| {
        n.saturating_add(q.name.wire_len()).saturating_add(4)
    });
    if question_len > max_len {
        return Err(ProtoError::FieldTooLong {
            field: "mDNS query (questions)",
            max: max_len,
            len: question_len,
        });
    }
    let mut messages = vec![Message {
        questions: questions.to_vec(),
        ..Message::default()
    }];
    let mut used = question_len;
    for ka in known_answers {
        let len = ka.wire_len();
        if HEADER_LEN.saturating_add(len) > max_len {
            // A record this large cannot be a known answer; skipping it only
            // costs a redundant reply.
            continue;
        }
        if used.saturating_add(len) > max_len {
            if let Some(last) = messages.last_mut() {
                last.truncated = true;
            }
            messages.push(Message::default());
            used = HEADER_LEN;
        }
        if let Some(last) = messages.last_mut() {
            last.answers.push(ka.clone());
        }
        used = used.saturating_add(len);
    }
    messages.iter().map(Message::emit).collect()
}

/// The transport a TP8009 `p=` TXT value names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    /// NVMe/TCP (`p=tcp`).
    Tcp,
    /// NVMe/RDMA (`p=roce`, `p=iwarp`, `p=rdma`).
    Rdma,
}

impl Transport {
    /// The kernel's name for it (`tcp`, `rdma`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Rdma => "rdma",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Python's `str.isprintable()` for the code point `b` (upstream turns each
/// TXT byte into the code point of the same value, i.e. reads Latin-1):
/// everything but C0/C1 controls, NBSP and the soft hyphen.
fn latin1_printable(b: u8) -> bool {
    matches!(b, 0x20..=0x7e | 0xa1..=0xac | 0xae..=0xff)
}

/// The TXT items of a TP8009 announcement as nvme-stas reads them
/// (docs/behaviour.md §10.3): an item is kept only if every byte is
/// printable and it splits on `=` into exactly two parts with a non-empty
/// key; the key is lower-cased (not stripped), the value kept verbatim;
/// later duplicates win. Bytes are read as Latin-1 code points, as upstream
/// does.
pub fn txt_dict<I: AsRef<[u8]>>(items: &[I]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for item in items {
        let item = item.as_ref();
        if !item.iter().all(|&b| latin1_printable(b)) {
            continue;
        }
        let text: String = item.iter().map(|&b| char::from(b)).collect();
        let mut parts = text.split('=');
        let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if key.is_empty() {
            continue;
        }
        out.insert(key.to_lowercase(), value.to_owned());
    }
    out
}

/// The transport named by `p` (stripped, lower-cased): `tcp` → TCP; `roce`,
/// `iwarp`, `rdma` → RDMA; anything else or missing → `None` (invalid).
pub fn txt_transport(dict: &BTreeMap<String, String>) -> Option<Transport> {
    match dict.get("p")?.trim().to_lowercase().as_str() {
        "tcp" => Some(Transport::Tcp),
        "roce" | "iwarp" | "rdma" => Some(Transport::Rdma),
        _ => None,
    }
}

/// The subsystem NQN named by `nqn` (stripped), or the well-known discovery
/// NQN when there is none (or it is blank).
pub fn txt_nqn(dict: &BTreeMap<String, String>) -> String {
    match dict.get("nqn").map(|v| v.trim()) {
        Some(v) if !v.is_empty() => v.to_owned(),
        _ => crate::WELL_KNOWN_DISCOVERY_NQN.to_owned(),
    }
}

#[cfg(test)]
mod tests;
