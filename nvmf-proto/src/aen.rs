//! Asynchronous event completion dword 0, as the kernel reports it in the
//! `NVME_AEN=0x70f002` uevent (docs/upstream.md §16.7).

use crate::ProtoError;

/// Asynchronous event type (bits 2:0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AenType {
    /// 0: error status.
    Error,
    /// 1: SMART / health status.
    Smart,
    /// 2: notice.
    Notice,
    /// 6: I/O command set specific status.
    IoCommandSet,
    /// 7: vendor specific.
    Vendor,
    /// Another value (3..=5 are reserved).
    Other(u8),
}

impl From<u8> for AenType {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::Error,
            1 => Self::Smart,
            2 => Self::Notice,
            6 => Self::IoCommandSet,
            7 => Self::Vendor,
            o => Self::Other(o),
        }
    }
}

impl From<AenType> for u8 {
    fn from(v: AenType) -> u8 {
        match v {
            AenType::Error => 0,
            AenType::Smart => 1,
            AenType::Notice => 2,
            AenType::IoCommandSet => 6,
            AenType::Vendor => 7,
            AenType::Other(o) => o,
        }
    }
}

/// Notice info 0xF0: the discovery log page changed.
pub const NOTICE_DISCOVERY_LOG_CHANGE: u8 = 0xf0;
/// The whole dword of a Discovery Log Page Change notice.
pub const DISCOVERY_LOG_CHANGE: u32 = 0x0070_f002;

/// A decoded asynchronous event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AenEvent {
    /// Event type, bits 2:0.
    pub event_type: AenType,
    /// Event information, bits 15:8.
    pub info: u8,
    /// Log page to read to clear the event, bits 23:16.
    pub lid: u8,
}

impl AenEvent {
    /// Decodes completion dword 0. Bits outside the three fields are reserved
    /// and ignored.
    pub fn from_dword(dw0: u32) -> Self {
        let [b0, info, lid, _] = dw0.to_le_bytes();
        Self {
            event_type: AenType::from(b0 & 0x07),
            info,
            lid,
        }
    }

    /// Encodes the event as completion dword 0. Fails for a type that does
    /// not fit the 3-bit field.
    pub fn to_dword(self) -> Result<u32, ProtoError> {
        let t = u8::from(self.event_type);
        if t > 7 {
            return Err(ProtoError::InvalidValue {
                what: "AEN event type",
                value: u64::from(t),
                expected: "0..=7",
            });
        }
        Ok(u32::from_le_bytes([t, self.info, self.lid, 0]))
    }

    /// Parses the value of an `NVME_AEN` uevent variable: hexadecimal, with
    /// or without `0x` (the kernel prints `%#08x`).
    pub fn from_uevent_value(text: &str) -> Result<Self, ProtoError> {
        let t = text.trim();
        let hex = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t);
        let bad = |reason| ProtoError::BadText {
            what: "NVME_AEN uevent value",
            text: t.chars().take(64).collect(),
            reason,
        };
        if hex.is_empty() || hex.len() > 8 {
            return Err(bad("expected 1 to 8 hex digits, like 0x70f002"));
        }
        let dw0 = u32::from_str_radix(hex, 16).map_err(|_| bad("not a hexadecimal number"))?;
        Ok(Self::from_dword(dw0))
    }

    /// Whether this is the Discovery Log Page Change notice (0x70f002): the
    /// discovery log must be read again.
    pub fn is_discovery_log_change(self) -> bool {
        self.event_type == AenType::Notice
            && self.info == NOTICE_DISCOVERY_LOG_CHANGE
            && self.lid == crate::logpages::LID_DISCOVERY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_change_decodes() {
        let e = AenEvent::from_uevent_value("0x70f002").unwrap();
        assert_eq!(
            e,
            AenEvent {
                event_type: AenType::Notice,
                info: 0xf0,
                lid: 0x70
            }
        );
        assert!(e.is_discovery_log_change());
        assert_eq!(e.to_dword().unwrap(), DISCOVERY_LOG_CHANGE);
        assert!(AenEvent::from_dword(DISCOVERY_LOG_CHANGE).is_discovery_log_change());
    }

    #[test]
    fn other_events_are_not_discovery_changes() {
        // Namespace attribute changed notice, SMART event, same info with another LID.
        for v in ["0x00000002", "0x00020001", "0x71f002", "70f001"] {
            assert!(
                !AenEvent::from_uevent_value(v)
                    .unwrap()
                    .is_discovery_log_change(),
                "{v}"
            );
        }
    }

    #[test]
    fn accepts_forms_the_kernel_may_print() {
        assert_eq!(
            AenEvent::from_uevent_value("0X0070F002").unwrap(),
            AenEvent::from_uevent_value("70f002").unwrap()
        );
        assert!(AenEvent::from_uevent_value(" 0x70f002\n")
            .unwrap()
            .is_discovery_log_change());
    }

    #[test]
    fn rejects_garbage_with_a_message_naming_it() {
        for v in ["", "0x", "zz", "0x123456789", "-1", "0x7 0f002"] {
            let err = AenEvent::from_uevent_value(v).unwrap_err();
            assert!(err.to_string().contains("NVME_AEN"), "{err}");
        }
    }

    #[test]
    fn reserved_bits_ignored_and_type_range_checked() {
        let e = AenEvent::from_dword(0xff70_f0fa);
        assert_eq!(e.event_type, AenType::Notice);
        assert_eq!(e.info, 0xf0);
        AenEvent {
            event_type: AenType::Other(9),
            info: 0,
            lid: 0,
        }
        .to_dword()
        .unwrap_err();
        for t in 0..8u8 {
            assert_eq!(u8::from(AenType::from(t)), t);
        }
    }
}
