//! Bounds-checked little-endian access to byte buffers, and the fixed-width
//! text fields NVMe structures are full of.
//!
//! Every read goes through `get`, so a short buffer is an error, never a
//! panic; parsers build on these helpers instead of indexing.

use crate::ProtoError;

/// Returns `buf[off..off + len]`, or `TooShort` naming `what`.
pub(crate) fn slice<'a>(
    buf: &'a [u8],
    off: usize,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], ProtoError> {
    let end = off.checked_add(len).ok_or(ProtoError::TooShort {
        what,
        need: usize::MAX,
        got: buf.len(),
    })?;
    buf.get(off..end).ok_or(ProtoError::TooShort {
        what,
        need: end,
        got: buf.len(),
    })
}

/// Reads a fixed-size array at `off`.
pub(crate) fn array<const N: usize>(
    buf: &[u8],
    off: usize,
    what: &'static str,
) -> Result<[u8; N], ProtoError> {
    let s = slice(buf, off, N, what)?;
    let mut out = [0u8; N];
    out.copy_from_slice(s);
    Ok(out)
}

pub(crate) fn u8_at(buf: &[u8], off: usize, what: &'static str) -> Result<u8, ProtoError> {
    buf.get(off).copied().ok_or(ProtoError::TooShort {
        what,
        need: off.saturating_add(1),
        got: buf.len(),
    })
}

pub(crate) fn u16_at(buf: &[u8], off: usize, what: &'static str) -> Result<u16, ProtoError> {
    array::<2>(buf, off, what).map(u16::from_le_bytes)
}

pub(crate) fn u32_at(buf: &[u8], off: usize, what: &'static str) -> Result<u32, ProtoError> {
    array::<4>(buf, off, what).map(u32::from_le_bytes)
}

pub(crate) fn u64_at(buf: &[u8], off: usize, what: &'static str) -> Result<u64, ProtoError> {
    array::<8>(buf, off, what).map(u64::from_le_bytes)
}

/// A writer over a zero-initialised output buffer. Writes past the end are
/// reported (they would be a bug in an emitter, not bad input).
pub(crate) struct Out<'a> {
    buf: &'a mut [u8],
    what: &'static str,
}

impl<'a> Out<'a> {
    pub(crate) fn new(buf: &'a mut [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    pub(crate) fn bytes(&mut self, off: usize, data: &[u8]) -> Result<(), ProtoError> {
        let got = self.buf.len();
        let end = off.saturating_add(data.len());
        let dst = self.buf.get_mut(off..end).ok_or(ProtoError::TooShort {
            what: self.what,
            need: end,
            got,
        })?;
        dst.copy_from_slice(data);
        Ok(())
    }

    pub(crate) fn u8(&mut self, off: usize, v: u8) -> Result<(), ProtoError> {
        self.bytes(off, &[v])
    }

    pub(crate) fn u16(&mut self, off: usize, v: u16) -> Result<(), ProtoError> {
        self.bytes(off, &v.to_le_bytes())
    }

    pub(crate) fn u32(&mut self, off: usize, v: u32) -> Result<(), ProtoError> {
        self.bytes(off, &v.to_le_bytes())
    }

    pub(crate) fn u64(&mut self, off: usize, v: u64) -> Result<(), ProtoError> {
        self.bytes(off, &v.to_le_bytes())
    }

    /// Writes `text` into a `width`-byte field padded with `pad`.
    pub(crate) fn text(
        &mut self,
        off: usize,
        width: usize,
        text: &str,
        pad: u8,
        field: &'static str,
    ) -> Result<(), ProtoError> {
        let b = text.as_bytes();
        if b.len() > width {
            return Err(ProtoError::FieldTooLong {
                field,
                max: width,
                len: b.len(),
            });
        }
        self.bytes(off, b)?;
        for i in b.len()..width {
            self.u8(off.saturating_add(i), pad)?;
        }
        Ok(())
    }
}

/// Which characters a text field may hold once its padding is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    /// Printable ASCII (0x20..=0x7e): addresses, service ids, serial numbers.
    Ascii,
    /// UTF-8 without control characters: NQNs are UTF-8 by the NVMe spec.
    Utf8,
}

/// Decodes a fixed-width text field as NVMe peers actually send it: the value
/// ends at the first NUL (anything after it is ignored, libnvme #561) or at
/// the field's end (unterminated, nvme-cli #3842); surrounding spaces are
/// padding (nvme-cli #162). Whatever remains must be printable.
pub(crate) fn decode_text(
    raw: &[u8],
    field: &'static str,
    charset: Charset,
) -> Result<String, ProtoError> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let value = raw.get(..end).unwrap_or_default();
    let start = value.iter().position(|&b| b != b' ').unwrap_or(value.len());
    let stop = value
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |p| p.saturating_add(1));
    let value = value.get(start..stop).unwrap_or_default();

    let bad = |offset: usize, byte: u8| ProtoError::NonPrintable {
        field,
        offset: offset.saturating_add(start),
        byte,
        value: escape(value),
    };
    match charset {
        Charset::Ascii => {
            if let Some(pos) = value.iter().position(|b| !(0x20..=0x7e).contains(b)) {
                let byte = value.get(pos).copied().unwrap_or_default();
                return Err(bad(pos, byte));
            }
            // All bytes are ASCII, so this cannot fail; map anyway rather than unwrap.
            String::from_utf8(value.to_vec()).map_err(|e| {
                let pos = e.utf8_error().valid_up_to();
                bad(pos, value.get(pos).copied().unwrap_or_default())
            })
        }
        Charset::Utf8 => {
            let text = std::str::from_utf8(value).map_err(|e| {
                let pos = e.valid_up_to();
                bad(pos, value.get(pos).copied().unwrap_or_default())
            })?;
            if let Some((pos, c)) = text.char_indices().find(|(_, c)| c.is_control()) {
                let byte = u8::try_from(u32::from(c)).unwrap_or(0xff);
                return Err(bad(pos, byte));
            }
            Ok(text.to_owned())
        }
    }
}

/// Renders bytes for a log message: printable ASCII as is, the rest as `\xNN`.
pub fn escape(raw: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(raw.len());
    for &b in raw {
        if (0x20..=0x7e).contains(&b) && b != b'\\' {
            s.push(char::from(b));
        } else {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(content: &[u8], width: usize) -> Vec<u8> {
        let mut v = content.to_vec();
        v.resize(width, 0);
        v
    }

    #[test]
    fn nul_padding_is_removed() {
        assert_eq!(
            decode_text(&field(b"4420", 32), "trsvcid", Charset::Ascii).unwrap(),
            "4420"
        );
    }

    #[test]
    fn space_padding_is_removed_both_sides() {
        let raw = b"  10.0.0.1                      ";
        assert_eq!(
            decode_text(raw, "traddr", Charset::Ascii).unwrap(),
            "10.0.0.1"
        );
    }

    #[test]
    fn bytes_after_first_nul_are_ignored() {
        let mut raw = field(b"10.0.0.1", 32);
        raw[9..13].copy_from_slice(b"\x01\xffzz");
        assert_eq!(
            decode_text(&raw, "traddr", Charset::Ascii).unwrap(),
            "10.0.0.1"
        );
    }

    #[test]
    fn unterminated_full_width_field_is_kept_whole() {
        let raw = [b'a'; 256];
        assert_eq!(
            decode_text(&raw, "subnqn", Charset::Utf8).unwrap().len(),
            256
        );
    }

    #[test]
    fn control_byte_is_an_error_naming_field_and_offset() {
        let raw = field(b"10.0\x07.0.1", 32);
        let err = decode_text(&raw, "traddr", Charset::Ascii).unwrap_err();
        assert_eq!(
            err,
            ProtoError::NonPrintable {
                field: "traddr",
                offset: 4,
                byte: 7,
                value: "10.0\\x07.0.1".into()
            }
        );
        assert!(err.to_string().contains("traddr"));
    }

    #[test]
    fn offset_counts_leading_padding() {
        let raw = field(b"  a\x7f", 8);
        match decode_text(&raw, "x", Charset::Ascii).unwrap_err() {
            ProtoError::NonPrintable { offset, .. } => assert_eq!(offset, 3),
            e => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn utf8_nqn_accepted_but_not_in_ascii_field() {
        let raw = field("nqn.2014-08.org.example:ünï".as_bytes(), 64);
        decode_text(&raw, "subnqn", Charset::Utf8).unwrap();
        decode_text(&raw, "traddr", Charset::Ascii).unwrap_err();
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let raw = field(b"nqn\xc3", 16);
        decode_text(&raw, "subnqn", Charset::Utf8).unwrap_err();
    }

    #[test]
    fn text_writer_pads_and_rejects_overflow() {
        let mut buf = [0xaau8; 8];
        let mut out = Out::new(&mut buf, "t");
        out.text(0, 6, "abc", b' ', "f").unwrap();
        assert_eq!(&buf, b"abc   \xaa\xaa");
        let mut out = Out::new(&mut buf, "t");
        assert!(matches!(
            out.text(0, 2, "abc", 0, "f"),
            Err(ProtoError::FieldTooLong {
                field: "f",
                max: 2,
                len: 3
            })
        ));
    }

    #[test]
    fn reads_past_end_are_errors() {
        let b = [1u8, 2, 3];
        u32_at(&b, 0, "x").unwrap_err();
        assert_eq!(u16_at(&b, 1, "x").unwrap(), 0x0302);
        slice(&b, usize::MAX, 2, "x").unwrap_err();
        u8_at(&b, 3, "x").unwrap_err();
    }
}
