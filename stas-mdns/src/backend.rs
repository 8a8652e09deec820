//! Which mDNS backend browses for discovery controllers (feature
//! `mdns-driver`): the built-in querier ([`MdnsBrowser`]) or avahi-daemon
//! ([`AvahiBrowser`]), or whichever fits the host (`auto`: Avahi when its
//! bus name has an owner on the system bus, else built-in). Both yield the
//! same [`MdnsEvent`]s, so the caller does not care which runs.

use tokio::sync::mpsc;

use super::avahi::{avahi_present, AvahiBrowser};
use super::driver::{DriverConfig, MdnsBrowser};
use super::{DiscoveredService, InterfaceStats, MdnsError, MdnsEvent};

/// The backend choice, as configured (`[Service Discovery] mdns-backend`).
pub use stas_config::{MdnsBackend, UnknownMdnsBackend};

/// The backend that `backend` means here and now: `Auto` becomes `Avahi`
/// when `system_bus` is given and avahi-daemon owns its name on it, else
/// `Builtin`; the others stay.
pub async fn resolve(backend: MdnsBackend, system_bus: Option<&zbus::Connection>) -> MdnsBackend {
    match (backend, system_bus) {
        (MdnsBackend::Auto, Some(bus)) if avahi_present(bus).await => MdnsBackend::Avahi,
        (MdnsBackend::Auto, _) => MdnsBackend::Builtin,
        (other, _) => other,
    }
}

/// Starts the backend [`resolve`] picks, on the current tokio runtime.
/// `driver` configures the built-in querier; `system_bus` is where
/// avahi-daemon is looked for (`None`: no bus, so `Auto` means built-in and
/// `Avahi` fails with [`MdnsError::NoBus`]).
pub async fn start(
    backend: MdnsBackend,
    driver: DriverConfig,
    system_bus: Option<&zbus::Connection>,
) -> Result<MdnsSource, MdnsError> {
    match resolve(backend, system_bus).await {
        MdnsBackend::Avahi => {
            let bus = system_bus.ok_or(MdnsError::NoBus)?;
            Ok(MdnsSource::Avahi(AvahiBrowser::start(bus.clone()).await?))
        }
        MdnsBackend::Auto | MdnsBackend::Builtin => {
            Ok(MdnsSource::Builtin(MdnsBrowser::start(driver)?))
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
            assert_eq!(resolve(MdnsBackend::Auto, None).await, MdnsBackend::Builtin);
            assert_eq!(resolve(MdnsBackend::Avahi, None).await, MdnsBackend::Avahi);
            let err = start(MdnsBackend::Avahi, DriverConfig::default(), None)
                .await
                .unwrap_err();
            assert_eq!(err, MdnsError::NoBus);
        });
    }
}
