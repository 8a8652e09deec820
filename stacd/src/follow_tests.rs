//! stacd following stafd on a real dbus-daemon: a fake stafd that counts
//! its `get_all_log_pages` calls, a forger that floods stafd's signals from
//! another connection, and a genuine burst from the fake stafd itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zbus::names::BusName;
use zbus::{interface, Connection};

use stas_daemon::dbus::contract::{member, staf};

use crate::dbus::{follow_stafd_counting, FollowStats};
use crate::service::Service;
use crate::sim::{host, SimKernel};

const STAF_BUS_NAME: &str = staf::BUS_NAME;
const STAF_PATH: &str = staf::OBJECT_PATH;
const STAF_INTERFACE: &str = staf::INTERFACE;

/// A dbus-daemon on a private socket, killed on drop.
struct PrivateBus {
    daemon: Child,
    dir: std::path::PathBuf,
    address: String,
}

impl PrivateBus {
    fn start(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("stacd-follow-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("bus");
        let conf = dir.join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/></policy></busconfig>"#,
                socket.display()
            ),
        )
        .unwrap();
        let daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .arg("--nofork")
            .spawn()
            .unwrap_or_else(|e| panic!("dbus-daemon is needed (apt-get install dbus-daemon): {e}"));
        let start = Instant::now();
        while !socket.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "dbus-daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            daemon,
            dir,
            address: format!("unix:path={}", socket.display()),
        }
    }

    async fn connect(&self) -> Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap()
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// stafd as far as stacd's follower can tell: an empty page, slowly.
struct FakeStaf {
    calls: Arc<AtomicU64>,
}

#[interface(name = "org.nvmexpress.staf")]
impl FakeStaf {
    #[zbus(name = "get_all_log_pages")]
    async fn get_all_log_pages(&self, _detailed: bool) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        "[]".into()
    }
}

async fn emit(conn: &Connection, n: usize) {
    for _ in 0..n {
        conn.emit_signal(
            None::<BusName<'_>>,
            STAF_PATH,
            STAF_INTERFACE,
            member::LOG_PAGES_CHANGED,
            &("tcp", "10.0.0.1", "8009", "", "", "nqn.x", "nqn.h", "nvme0"),
        )
        .await
        .unwrap();
    }
}

async fn settled(calls: &AtomicU64, stats: &Mutex<FollowStats>) -> (u64, FollowStats) {
    // Quiet for 300 ms: nothing left in flight.
    let mut last = (u64::MAX, FollowStats::default());
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = (calls.load(Ordering::SeqCst), *stats.lock().unwrap());
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_stafds_signals_count_and_a_burst_costs_at_most_two_fetches() {
    let bus = PrivateBus::start("burst");
    let calls = Arc::new(AtomicU64::new(0));
    let staf = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .serve_at(
            STAF_PATH,
            FakeStaf {
                calls: calls.clone(),
            },
        )
        .unwrap()
        .name(STAF_BUS_NAME)
        .unwrap()
        .build()
        .await
        .unwrap();
    let (_svc, handle) = Service::new(SimKernel::new(), host(), Arc::default(), None);
    let stats = Arc::new(Mutex::new(FollowStats::default()));
    let stacd = bus.connect().await;
    tokio::spawn(follow_stafd_counting(stacd.clone(), handle, stats.clone()));
    let (fetches, _) = settled(&calls, &stats).await;
    assert_eq!(fetches, 1, "one fetch when stafd is found");

    // 2,000 forged signals, broadcast and sent to stacd directly.
    let forger = bus.connect().await;
    emit(&forger, 1000).await;
    let me = stacd.unique_name().unwrap().to_owned();
    for _ in 0..1000 {
        forger
            .emit_signal(
                Some(me.clone()),
                STAF_PATH,
                STAF_INTERFACE,
                "log_pages_changed",
                &(),
            )
            .await
            .unwrap();
    }
    let (fetches, s) = settled(&calls, &stats).await;
    println!("after 2,000 forged signals: {fetches} fetches, {s:?}");
    assert_eq!(fetches, 1, "forged signals cost no fetch");
    assert_eq!(s.signals, 0);

    // The follower still follows: one genuine signal, one fetch.
    let t = Instant::now();
    emit(&staf, 1).await;
    while calls.load(Ordering::SeqCst) < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "stafd's signal not followed"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!(
        "genuine signal after the flood -> fetch in {:?}",
        t.elapsed()
    );
    let (before, _) = settled(&calls, &stats).await;

    // A genuine burst of 2,000.
    emit(&staf, 2000).await;
    let (after, s) = settled(&calls, &stats).await;
    println!(
        "a burst of 2,000 genuine signals: {} fetches, {s:?}",
        after - before
    );
    assert!(
        after - before <= 2,
        "{} fetches for one burst",
        after - before
    );
    assert!(after > before, "the burst is followed");
    drop(bus);
}
