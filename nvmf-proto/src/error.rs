//! The one error type of nvmf-proto.

use thiserror::Error;

/// Why a structure could not be parsed or emitted.
///
/// Every message names the structure or field and the offending value, so a
/// log line is enough to tell which peer sent what.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The buffer ends before the structure does.
    #[error(
        "{what}: {got} bytes received, at least {need} needed (truncated data from the peer?)"
    )]
    TooShort {
        /// The structure being parsed.
        what: &'static str,
        /// Bytes required.
        need: usize,
        /// Bytes available.
        got: usize,
    },
    /// A fixed-width text field holds a byte that is not printable text.
    #[error("{field}: non-printable byte {byte:#04x} at offset {offset} in \"{value}\"")]
    NonPrintable {
        /// The field, e.g. `traddr`.
        field: &'static str,
        /// Offset of the bad byte inside the field.
        offset: usize,
        /// The bad byte.
        byte: u8,
        /// The field's content with non-printable bytes escaped, for the log.
        value: String,
    },
    /// A value does not fit the fixed-width field it must be written into.
    #[error("{field}: {len} bytes do not fit the {max}-byte field")]
    FieldTooLong {
        /// The field being emitted.
        field: &'static str,
        /// Its capacity in bytes.
        max: usize,
        /// The length of the value.
        len: usize,
    },
    /// A value is outside what the structure allows.
    #[error("{what}: invalid value {value:#x}, expected {expected}")]
    InvalidValue {
        /// The field or structure.
        what: &'static str,
        /// The value found.
        value: u64,
        /// What is accepted.
        expected: &'static str,
    },
    /// An offset/length pair points outside the region it must lie in.
    #[error("{what}: range {offset}+{len} lies outside the {limit}-byte {region}")]
    OutOfBounds {
        /// The object the pointer belongs to.
        what: &'static str,
        /// Start offset.
        offset: u64,
        /// Length.
        len: u64,
        /// Size of the enclosing region.
        limit: u64,
        /// Name of the enclosing region (`table`, `heap`, ...).
        region: &'static str,
    },
    /// A table's checksum does not add up.
    #[error("{what}: checksum mismatch (bytes sum to {sum:#04x}, must be 0)")]
    Checksum {
        /// The table.
        what: &'static str,
        /// The byte sum modulo 256.
        sum: u8,
    },
    /// Text that should be a number or an identifier could not be read.
    #[error("{what}: cannot parse {text:?}: {reason}")]
    BadText {
        /// The value being parsed.
        what: &'static str,
        /// The text given.
        text: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A message does not follow its wire format (a DNS packet from the network).
    #[error("{what}: malformed ({reason}); the sender is not speaking the protocol, or the packet was damaged")]
    Malformed {
        /// The message being parsed.
        what: &'static str,
        /// What the decoder reported.
        reason: String,
    },
}
