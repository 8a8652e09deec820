//! Which mDNS backend browses for discovery controllers (feature
//! `mdns-driver`): the built-in querier ([`MdnsBrowser`]) or avahi-daemon
//! ([`AvahiBrowser`]), or whichever fits the host (`auto`: Avahi when its
//! bus name has an owner on the system bus, else built-in). Both yield the
//! same [`MdnsEvent`]s, so the caller does not care which runs.

use std::str::FromStr;

use tokio::sync::mpsc;

use super::avahi::{avahi_present, AvahiBrowser};
use super::driver::{DriverConfig, MdnsBrowser};
use super::{DiscoveredService, InterfaceStats, MdnsError, MdnsEvent};

/// The backend choice, as configured (`[Service Discovery] mdns-backend`).
pub use crate::config::MdnsBackend;

impl MdnsBackend {
    /// The backend that `self` means here and now: `Auto` becomes `Avahi`
    /// when `system_bus` is given and avahi-daemon owns its name on it,
    /// else `Builtin`; the others stay.
    pub async fn resolve(self, system_bus: Option<&zbus::Connection>) -> Self {
        match (self, system_bus) {
            (Self::Auto, Some(bus)) if avahi_present(bus).await => Self::Avahi,
            (Self::Auto, _) => Self::Builtin,
            (other, _) => other,
        }
    }

    /// Starts the backend [`resolve`](Self::resolve) picks, on the current
    /// tokio runtime. `driver` configures the built-in querier;
    /// `system_bus` is where avahi-daemon is looked for (`None`: no bus, so
    /// `Auto` means built-in and `Avahi` fails with [`MdnsError::NoBus`]).
    pub async fn start(
        self,
        driver: DriverConfig,
        system_bus: Option<&zbus::Connection>,
    ) -> Result<MdnsSource, MdnsError> {
        match self.resolve(system_bus).await {
            Self::Avahi => {
                let bus = system_bus.ok_or(MdnsError::NoBus)?;
                Ok(MdnsSource::Avahi(AvahiBrowser::start(bus.clone()).await?))
            }
            Self::Auto | Self::Builtin => Ok(MdnsSource::Builtin(MdnsBrowser::start(driver)?)),
        }
    }
}

/// A backend name that is none of `auto`, `builtin`, `avahi`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mDNS backend {0:?}: expected auto, builtin or avahi")]
pub struct UnknownMdnsBackend(pub String);

impl FromStr for MdnsBackend {
    type Err = UnknownMdnsBackend;

    /// `auto`, `builtin` (also `built-in`) or `avahi`, in any case, blanks
    /// around ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "builtin" | "built-in" => Ok(Self::Builtin),
            "avahi" => Ok(Self::Avahi),
            _ => Err(UnknownMdnsBackend(s.to_owned())),
        }
    }
}

/// A running backend: one event stream and one view, whichever it is.
#[derive(Debug)]
pub enum MdnsSource {
    /// The built-in querier.
    Builtin(MdnsBrowser),
    /// avahi-daemon.
    Avahi(AvahiBrowser),
}

impl MdnsSource {
    /// Which backend this is (`Builtin` or `Avahi`, never `Auto`).
    pub fn backend(&self) -> MdnsBackend {
        match self {
            Self::Builtin(_) => MdnsBackend::Builtin,
            Self::Avahi(_) => MdnsBackend::Avahi,
        }
    }

    /// Found/Updated/Removed, in order. Dropping the source stops it.
    pub fn events(&mut self) -> &mut mpsc::Receiver<MdnsEvent> {
        match self {
            Self::Builtin(b) => &mut b.events,
            Self::Avahi(a) => &mut a.events,
        }
    }

    /// The next event; `None` once the backend has stopped.
    pub async fn recv(&mut self) -> Option<MdnsEvent> {
        self.events().recv().await
    }

    /// The services resolved now.
    pub fn services(&self) -> Vec<DiscoveredService> {
        match self {
            Self::Builtin(b) => b.services(),
            Self::Avahi(a) => a.services(),
        }
    }

    /// Query counters per interface (the built-in querier's; avahi-daemon
    /// keeps its own, so this is empty for Avahi).
    pub fn stats(&self) -> Vec<InterfaceStats> {
        match self {
            Self::Builtin(b) => b.stats(),
            Self::Avahi(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn backend_names_parse_and_print() {
        for (text, want) in [
            ("auto", MdnsBackend::Auto),
            ("builtin", MdnsBackend::Builtin),
            (" Built-In ", MdnsBackend::Builtin),
            ("AVAHI", MdnsBackend::Avahi),
        ] {
            assert_eq!(text.parse::<MdnsBackend>().unwrap(), want, "{text}");
        }
        for b in [MdnsBackend::Auto, MdnsBackend::Builtin, MdnsBackend::Avahi] {
            assert_eq!(b.to_string().parse::<MdnsBackend>().unwrap(), b);
        }
        let err = "bonjour".parse::<MdnsBackend>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown mDNS backend \"bonjour\": expected auto, builtin or avahi"
        );
        assert_eq!(MdnsBackend::default(), MdnsBackend::Auto);
    }

    #[test]
    fn auto_without_a_bus_is_builtin_and_avahi_without_a_bus_fails() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(MdnsBackend::Auto.resolve(None).await, MdnsBackend::Builtin);
            assert_eq!(MdnsBackend::Avahi.resolve(None).await, MdnsBackend::Avahi);
            let err = MdnsBackend::Avahi
                .start(DriverConfig::default(), None)
                .await
                .unwrap_err();
            assert_eq!(err, MdnsError::NoBus);
        });
    }
}
