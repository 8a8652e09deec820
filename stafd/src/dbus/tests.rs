#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::time::Duration;

use futures_util::StreamExt;
use nvmf_proto::dlp::{DiscoveryLogEntry, Tsas};
use nvmf_proto::types::{AdrFam, CntrlType, DcType, SecType, SubType, TrType};
use nvmf_proto::WELL_KNOWN_DISCOVERY_NQN;
use stas_config::parse_stafd;
use zbus::connection::Builder;
use zbus::message::Type as MessageType;
use zbus::zvariant::{OwnedValue, Value};

use serde::Serialize;
use stas_config::{Cid, SysConf};
use stas_daemon::dbus::contract::staf::DEBUG_INTERFACE;
use stas_tid::TidContext;
use zbus::zvariant::Type;

use super::*;
use crate::dc::DcStatus;
use crate::dc::HostInfo;
use crate::service::{Input, Service, ServiceHandle, Stats};

type View = stas_daemon::StatusBoard<DcStatus>;
use crate::sim::{DcSim as _, SimKernel};

const HOSTNQN: &str = "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const HOSTID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const CONF: &str = "[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1;kato=30;dhchap-secret=DHHC-1:00:c2VjcmV0:\n";

fn entry() -> DiscoveryLogEntry {
    DiscoveryLogEntry {
        trtype: TrType::Tcp,
        adrfam: AdrFam::Ipv4,
        subtype: SubType::Nvme,
        traddr: "10.0.0.9".into(),
        trsvcid: "4420".into(),
        subnqn: "nqn.1988-11.com.dell:sub1".into(),
        portid: 1,
        cntlid: 0xffff,
        asqsz: 32,
        tsas: Tsas::tcp(SecType::None),
        ..DiscoveryLogEntry::default()
    }
}

fn sys() -> SysConf {
    SysConf {
        hostnqn: HOSTNQN.into(),
        hostid: HOSTID.into(),
        hostkey: Some("DHHC-1:00:aG9zdGtleQ==:".into()),
        symname: None,
    }
}

fn dbus_config(view: View) -> DbusConfig {
    let device_info: DeviceInfoFn = Arc::new(|name: &str| {
        Some(ControllerInfo {
            name: name.to_owned(),
            hostnqn: Some(HOSTNQN.into()),
            hostid: Some(HOSTID.into()),
            model: Some("Linux".into()),
            serial: Some("(efault)".into()),
            cntrltype: Some(CntrlType::Discovery),
            dctype: Some(DcType::None),
            ..ControllerInfo::default()
        })
    });
    DbusConfig {
        view,
        tid_context: SharedTidContext::new(TidContext {
            host_nqn: HOSTNQN.into(),
            ignore_iface: false,
        }),
        sys: sys(),
        lkc_path: Some("/run/stafd/last-known-config.bin".into()),
        kernel_tp8013: true,
        kernel_host_iface: false,
        device_info: Some(device_info),
        extra: ZeroconfView::default(),
    }
}

/// A server exporting the objects and a client, over a socket pair.
async fn p2p(cfg: DbusConfig, queue: SignalQueue) -> (Connection, Connection) {
    let (a, b) = tokio::net::UnixStream::pair().unwrap();
    let server = export(
        Builder::unix_stream(a)
            .server(zbus::Guid::generate())
            .unwrap()
            .p2p(),
        cfg,
        queue,
    );
    let client = Builder::unix_stream(b).p2p().build();
    let (server, client) = tokio::join!(server, client);
    (server.unwrap(), client.unwrap())
}

struct Daemon {
    handle: ServiceHandle,
    task: tokio::task::JoinHandle<Stats>,
    _server: Connection,
    client: Connection,
}

/// The service on a simulated kernel with one reachable DC, once the
/// DC is steady, with the sending and receiving ends of its signals.
async fn steady_service() -> (
    ServiceHandle,
    tokio::task::JoinHandle<Stats>,
    DbusSignals,
    SignalQueue,
) {
    let sim = SimKernel::new();
    sim.add_dc("10.0.0.1", "8009", DcType::None, vec![entry()]);
    let (cfg, diags) = parse_stafd(CONF, "test.conf").unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    let (tx, queue) = signals();
    let host = HostInfo {
        hostnqn: HOSTNQN.into(),
        hostid: HOSTID.into(),
        ..HostInfo::default()
    };
    let (svc, handle) = Service::new(sim, host, Arc::new(cfg), Arc::new(tx.clone()), None);
    let task = tokio::spawn(svc.run());
    for _ in 0..500 {
        if handle
            .view
            .snapshot()
            .iter()
            .any(|s| s.stage == Stage::Steady)
        {
            return (handle, task, tx, queue);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the DC never became steady");
}

impl Daemon {
    /// The service, its D-Bus objects and a peer-to-peer client.
    async fn start() -> Self {
        let (handle, task, _, queue) = steady_service().await;
        let (server, client) = p2p(dbus_config(handle.view.clone()), queue).await;
        Self {
            handle,
            task,
            _server: server,
            client,
        }
    }

    async fn call<B>(&self, iface: &str, method: &str, body: &B) -> zbus::Message
    where
        B: Serialize + zbus::zvariant::DynamicType,
    {
        self.client
            .call_method(None::<BusName<'_>>, OBJECT_PATH, Some(iface), method, body)
            .await
            .unwrap()
    }

    /// The answer of a hand-built call, deserialized.
    async fn answer<B, R>(&self, iface: &str, method: &str, body: &B) -> R
    where
        B: Serialize + zbus::zvariant::DynamicType,
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        self.call(iface, method, body)
            .await
            .body()
            .deserialize()
            .unwrap()
    }

    async fn stop(self) {
        self.handle.send(Input::Shutdown);
        self.task.await.unwrap();
    }
}

fn dlpe_expected() -> Vec<(&'static str, &'static str)> {
    vec![
        ("trtype", "tcp"),
        ("adrfam", "ipv4"),
        ("traddr", "10.0.0.9"),
        ("trsvcid", "4420"),
        ("subnqn", "nqn.1988-11.com.dell:sub1"),
        ("subtype", "nvme"),
        ("treq", "not specified"),
        ("tsas", "{'sectype': 'none'}"),
        ("portid", "1"),
        ("cntlid", "65535"),
        ("asqsz", "32"),
        ("eflags", "0"),
    ]
}

fn pairs(d: &OrderedDict) -> Vec<(&str, &str)> {
    d.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn id_expected() -> Vec<(&'static str, &'static str)> {
    vec![
        ("traddr", "10.0.0.1"),
        ("trsvcid", "8009"),
        ("transport", "tcp"),
        ("subsysnqn", WELL_KNOWN_DISCOVERY_NQN),
        ("host-iface", ""),
        ("host-traddr", ""),
        ("dhchap-secret", "<redacted>"),
        ("kato", "30"),
        ("host-nqn", HOSTNQN),
        ("device", "nvme0"),
    ]
}

const TID_ARGS: (&str, &str, &str, &str, &str, &str, &str) = (
    "tcp",
    "10.0.0.1",
    "",
    WELL_KNOWN_DISCOVERY_NQN,
    "",
    "",
    HOSTNQN,
);

#[tokio::test]
async fn list_controllers_shapes_order_and_redaction() {
    let d = Daemon::start().await;
    let msg = d.call(INTERFACE, "list_controllers", &(false,)).await;
    assert_eq!(msg.body().signature().to_string_no_parens(), "aa{ss}");
    let list: Vec<OrderedDict> = msg.body().deserialize().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(pairs(&list[0]), id_expected());

    let msg = d.call(INTERFACE, "list_controllers", &(true,)).await;
    assert_eq!(msg.body().signature().to_string_no_parens(), "aa{ss}");
    let list: Vec<OrderedDict> = msg.body().deserialize().unwrap();
    let mut expected = id_expected();
    expected.extend([
        ("connect attempts", "0"),
        ("retry connect timer", "60.0s [off]"),
        ("origin", "configured"),
        ("hostid", HOSTID),
        ("hostnqn", HOSTNQN),
        ("model", "Linux"),
        ("serial", ""),
        ("dctype", "none"),
        ("cntrltype", "discovery"),
        ("connected", "True"),
    ]);
    assert_eq!(pairs(&list[0]), expected);
    d.stop().await;
}

#[tokio::test]
async fn get_log_pages_exact_tid_or_empty() {
    let d = Daemon::start().await;
    let msg = d.call(INTERFACE, "get_log_pages", &TID_ARGS).await;
    assert_eq!(msg.body().signature().to_string_no_parens(), "aa{ss}");
    let pages: Vec<OrderedDict> = msg.body().deserialize().unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(pairs(&pages[0]), dlpe_expected());

    // host_nqn is taken literally: "" is not the sys.conf NQN.
    let unknown = [
        (
            "tcp",
            "10.0.0.1",
            "8009",
            WELL_KNOWN_DISCOVERY_NQN,
            "",
            "",
            "",
        ),
        (
            "tcp",
            "10.0.0.2",
            "8009",
            WELL_KNOWN_DISCOVERY_NQN,
            "",
            "",
            HOSTNQN,
        ),
        ("tcp", "10.0.0.1", "8009", "", "", "", HOSTNQN),
    ];
    for args in unknown {
        let msg = d.call(INTERFACE, "get_log_pages", &args).await;
        assert_eq!(msg.body().signature().to_string_no_parens(), "aa{ss}");
        let pages: Vec<OrderedDict> = msg.body().deserialize().unwrap();
        assert!(pages.is_empty(), "{args:?}");
        let msg = d.call(DEBUG_INTERFACE, "controller_info", &args).await;
        assert_eq!(msg.body().deserialize::<String>().unwrap(), "{}");
    }
    d.stop().await;
}

#[tokio::test]
async fn get_all_log_pages_is_python_json() {
    let d = Daemon::start().await;
    let msg = d.call(INTERFACE, "get_all_log_pages", &(false,)).await;
    assert_eq!(msg.body().signature().to_string_no_parens(), "s");
    let text: String = msg.body().deserialize().unwrap();
    let expected = concat!(
        r#"[{"discovery-controller": {"traddr": "10.0.0.1", "trsvcid": "8009", "transport": "tcp", "#,
        r#""subsysnqn": "nqn.2014-08.org.nvmexpress.discovery", "host-iface": "", "host-traddr": "", "#,
        r#""dhchap-secret": "<redacted>", "kato": "30", "#,
        r#""host-nqn": "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "device": "nvme0"}, "#,
        r#""log-pages": [{"trtype": "tcp", "adrfam": "ipv4", "traddr": "10.0.0.9", "trsvcid": "4420", "#,
        r#""subnqn": "nqn.1988-11.com.dell:sub1", "subtype": "nvme", "treq": "not specified", "#,
        r#""tsas": "{'sectype': 'none'}", "portid": "1", "cntlid": "65535", "asqsz": "32", "eflags": "0"}]}]"#
    );
    assert_eq!(text, expected);

    let text: String = d
        .call(INTERFACE, "get_all_log_pages", &(true,))
        .await
        .body()
        .deserialize()
        .unwrap();
    assert!(
        text.contains(r#""device": "nvme0", "connect attempts": "0", "retry connect timer": "60.0s [off]", "origin": "configured", "hostid": ""#),
        "{text}"
    );
    assert!(
        text.contains(r#""cntrltype": "discovery", "connected": "True"}, "log-pages": [{"#),
        "{text}"
    );
    assert!(!text.contains("c2VjcmV0"), "secret leaked: {text}");
    d.stop().await;
}

#[tokio::test]
async fn controller_info_process_info_and_tron() {
    let d = Daemon::start().await;
    let msg = d.call(DEBUG_INTERFACE, "controller_info", &TID_ARGS).await;
    assert_eq!(msg.body().signature().to_string_no_parens(), "s");
    let text: String = msg.body().deserialize().unwrap();
    assert_eq!(
        text,
        concat!(
            r#"{"traddr": "10.0.0.1", "trsvcid": "8009", "transport": "tcp", "#,
            r#""subsysnqn": "nqn.2014-08.org.nvmexpress.discovery", "host-iface": "", "host-traddr": "", "#,
            r#""dhchap-secret": "<redacted>", "kato": "30", "#,
            r#""host-nqn": "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "device": "nvme0", "#,
            r#""connect attempts": "0", "retry connect timer": "60.0s [off]", "origin": "configured"}"#
        )
    );

    // tron: a property round trip, seen by log_level and process_info.
    let props = "org.freedesktop.DBus.Properties";
    for on in [true, false] {
        d.call(props, "Set", &(DEBUG_INTERFACE, "tron", Value::from(on)))
            .await;
        let v: OwnedValue = d
            .call(props, "Get", &(DEBUG_INTERFACE, "tron"))
            .await
            .body()
            .deserialize()
            .unwrap();
        assert_eq!(bool::try_from(v).unwrap(), on);
        let v: OwnedValue = d
            .call(props, "Get", &(DEBUG_INTERFACE, "log_level"))
            .await
            .body()
            .deserialize()
            .unwrap();
        assert_eq!(
            String::try_from(v).unwrap(),
            if on { "DEBUG" } else { "INFO" }
        );
        let msg = d.call(DEBUG_INTERFACE, "process_info", &()).await;
        assert_eq!(msg.body().signature().to_string_no_parens(), "s");
        let text: String = msg.body().deserialize().unwrap();
        let expected = format!(
            concat!(
                r#"{{"tron": {}, "log-level": "{}", "#,
                r#""hostnqn": "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "#,
                r#""hostid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "hostkey": "<redacted>", "symname": null, "#,
                r#""last known config file": "/run/stafd/last-known-config.bin", "#,
                r#""kernel support.TP8013": "True", "kernel support.host_iface": "False"}}"#
            ),
            on,
            if on { "DEBUG" } else { "INFO" }
        );
        assert_eq!(text, expected);
    }
    d.stop().await;
}

#[tokio::test]
async fn introspection_has_upstream_member_names() {
    let (_tx, queue) = signals();
    let view = View::default();
    let (_server, client) = p2p(dbus_config(view.clone()), queue).await;
    let xml: String = client
        .call_method(
            None::<BusName<'_>>,
            OBJECT_PATH,
            Some("org.freedesktop.DBus.Introspectable"),
            "Introspect",
            &(),
        )
        .await
        .unwrap()
        .body()
        .deserialize()
        .unwrap();
    for needle in [
        r#"<interface name="org.nvmexpress.staf">"#,
        r#"<interface name="org.nvmexpress.staf.debug">"#,
        r#"<method name="list_controllers">"#,
        r#"<method name="get_log_pages">"#,
        r#"<method name="get_all_log_pages">"#,
        r#"<signal name="log_pages_changed">"#,
        r#"<signal name="dc_removed">"#,
        r#"<method name="process_info">"#,
        r#"<method name="controller_info">"#,
        r#"<property name="tron" type="b" access="readwrite">"#,
        r#"<property name="log_level" type="s" access="read">"#,
    ] {
        assert!(xml.contains(needle), "{needle} missing from:\n{xml}");
    }
    // Empty daemon: empty answers, not errors.
    let list: Vec<OrderedDict> = client
        .call_method(
            None::<BusName<'_>>,
            OBJECT_PATH,
            Some(INTERFACE),
            "list_controllers",
            &(true,),
        )
        .await
        .unwrap()
        .body()
        .deserialize()
        .unwrap();
    assert!(list.is_empty());
    let all = || {
        client.call_method(
            None::<BusName<'_>>,
            OBJECT_PATH,
            Some(INTERFACE),
            "get_all_log_pages",
            &(false,),
        )
    };
    // Before the service published anything, "no DCs" is not known yet.
    let e = all().await.unwrap_err().to_string();
    assert!(e.contains("stafd is starting"), "{e}");
    view.set(Vec::new());
    let text: String = all().await.unwrap().body().deserialize().unwrap();
    assert_eq!(text, "[]");
}

#[tokio::test]
async fn signals_arrive_in_order_with_their_arguments() {
    let (tx, queue) = signals();
    // Raised before the connection exists: queued, not lost.
    tx.dc_removed();
    let (_server, client) = p2p(dbus_config(View::default()), queue).await;
    let mut stream = zbus::MessageStream::from(&client);
    let tid = Tid::from_cid(
        &[
            ("transport", "tcp"),
            ("traddr", "fd00::1"),
            ("subsysnqn", "nqn.x"),
            ("host-iface", "eth0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        &TidContext {
            host_nqn: HOSTNQN.into(),
            ignore_iface: false,
        },
    );
    tx.log_pages_changed(&tid, "nvme3");
    tx.dc_removed();
    let mut got = Vec::new();
    while got.len() < 3 {
        let msg = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("signal within 5 s")
            .unwrap()
            .unwrap();
        let hdr = msg.header();
        if hdr.message_type() != MessageType::Signal {
            continue;
        }
        assert_eq!(hdr.path().unwrap().as_str(), OBJECT_PATH);
        assert_eq!(hdr.interface().unwrap().as_str(), INTERFACE);
        let member = hdr.member().unwrap().to_string();
        let sig = msg.body().signature().to_string_no_parens();
        got.push((member, sig, msg));
    }
    assert_eq!((got[0].0.as_str(), got[0].1.as_str()), ("dc_removed", ""));
    assert_eq!(
        (got[1].0.as_str(), got[1].1.as_str()),
        ("log_pages_changed", "ssssssss")
    );
    assert_eq!((got[2].0.as_str(), got[2].1.as_str()), ("dc_removed", ""));
    let args: (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
    ) = got[1].2.body().deserialize().unwrap();
    assert_eq!(
        args,
        (
            "tcp".into(),
            "fd00::1".into(),
            "8009".into(),
            "nqn.x".into(),
            String::new(),
            "eth0".into(),
            HOSTNQN.into(),
            "nvme3".into()
        )
    );
}

fn status(cfg: &[(&str, &str)]) -> DcStatus {
    let mut cid: Cid = [
        ("transport", "tcp"),
        ("traddr", "10.0.0.1"),
        ("subsysnqn", "nqn.d"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    cid.extend(cfg.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    DcStatus {
        tid: Tid::from_cid(&cid, &TidContext::default()),
        origin: None,
        device: None,
        connected: false,
        log_pages: vec![entry()],
        have_log_pages: true,
        dctype: None,
        connect_attempts: 0,
        stage: Stage::Waiting,
        last_error: None,
        fetches: 0,
        persistent: stas_config::Persistent::Force,
        referral_epcsd: None,
    }
}

#[test]
fn secrets_are_redacted_only_when_asked() {
    let s = status(&[
        ("dhchap-ctrl-secret", "DHHC-1:01:x:"),
        ("dhchap-secret", "DHHC-1:00:y:"),
        ("hdr-digest", "true"),
    ]);
    assert!(s.has_secrets());
    let d = s.controller_id_dict(true);
    assert_eq!(d.get("dhchap-secret"), Some(REDACTED));
    assert_eq!(d.get("dhchap-ctrl-secret"), Some(REDACTED));
    assert_eq!(d.get("hdr-digest"), Some("true"));
    let d = s.controller_id_dict(false);
    assert_eq!(d.get("dhchap-secret"), Some("DHHC-1:00:y:"));
    assert!(!status(&[("kato", "10")]).has_secrets());
}

#[test]
fn unbound_dc_and_host_nqn_override_key_order() {
    // A per-controller host-nqn is a cfg key upstream, but the dict shows
    // it once, just before device.
    let s = status(&[("host-nqn", "nqn.h"), ("kato", "5")]);
    let d = s.controller_id_dict(true);
    let keys: Vec<&str> = d.keys().collect();
    assert_eq!(
        keys,
        [
            "traddr",
            "trsvcid",
            "transport",
            "subsysnqn",
            "host-iface",
            "host-traddr",
            "kato",
            "host-nqn",
            "device"
        ]
    );
    assert_eq!(d.get("host-nqn"), Some("nqn.h"));
    assert_eq!(d.get("device"), Some("nvme?"));
    // Not bound, no sysfs: every attribute is "", connected False, no origin.
    let d = s.details_dict(true, None);
    for k in [
        "hostid",
        "hostnqn",
        "model",
        "serial",
        "dctype",
        "cntrltype",
    ] {
        assert_eq!(d.get(k), Some(""), "{k}");
    }
    assert_eq!(d.get("connected"), Some("False"));
    assert_eq!(d.get("origin"), None);
}

#[test]
fn timers_and_operations_in_python_text() {
    assert_eq!(timer_text(Duration::from_secs(60), None), "60.0s [off]");
    assert_eq!(timer_text(Duration::from_millis(1500), None), "1.5s [off]");
    assert_eq!(
        timer_text(Duration::from_secs(1), Some(Duration::ZERO)),
        "1.0s [0s]"
    );
    assert_eq!(
        timer_text(Duration::from_secs(3), Some(Duration::from_millis(2500))),
        "3.0s [2.5s]"
    );

    let mut s = status(&[]);
    s.connect_attempts = 1;
    assert_eq!(
        retry_timer_text(&s),
        "3.0s [off]",
        "after the first failure"
    );
    s.connect_attempts = 2;
    assert_eq!(retry_timer_text(&s), "60.0s [off]");
    s.connect_attempts = 0;
    assert_eq!(retry_timer_text(&s), "3.0s [off]", "after a device removal");
    s.stage = Stage::Connecting;
    s.connect_attempts = 3;
    s.last_error = Some("Connection refused (traddr='10.0.0.1')".into());
    let d = s.info_dict(true);
    assert_eq!(
        d.get("connect operation"),
        Some(
            r#"{'fail count': 2, 'completed': False, 'alive': True, 'error': "Connection refused (traddr='10.0.0.1')"}"#
        )
    );
    s.stage = Stage::Fetching;
    s.last_error = None;
    let d = s.info_dict(true);
    assert_eq!(d.get("connect operation"), None);
    assert_eq!(
        d.get("get log page operation"),
        Some("{'fail count': 0, 'completed': False, 'alive': True}")
    );

    assert_eq!(py_repr_str("a'b\"c"), r#"'a\'b"c'"#);
    assert_eq!(py_repr_str("tab\there\\"), r"'tab\there\\'");
    assert_eq!(py_repr_str("\u{1}é"), r"'\x01é'");
}

#[test]
fn json_text_matches_python_json_dumps() {
    // json.dumps({"a": ["café", "\U0001F600", "q\"\\\n\x01\x7f"], "b": None, "c": True, "d": {}})
    let v = Json::Obj(vec![
        (
            "a".into(),
            Json::Arr(vec![
                Json::Str("café".into()),
                Json::Str("\u{1F600}".into()),
                Json::Str("q\"\\\n\u{1}\u{7f}".into()),
            ]),
        ),
        ("b".into(), Json::Null),
        ("c".into(), Json::Bool(true)),
        ("d".into(), Json::Obj(vec![])),
        ("e".into(), Json::Arr(vec![])),
    ]);
    assert_eq!(
        v.dumps(),
        r#"{"a": ["caf\u00e9", "\ud83d\ude00", "q\"\\\n\u0001\u007f"], "b": null, "c": true, "d": {}, "e": []}"#
    );
}

#[test]
fn ordered_dict_has_the_a_ss_signature() {
    assert_eq!(OrderedDict::SIGNATURE.to_string(), "a{ss}");
    assert_eq!(<Vec<OrderedDict> as Type>::SIGNATURE.to_string(), "aa{ss}");
}

/// A private dbus-daemon, killed when dropped.
struct PrivateBus {
    child: std::process::Child,
    address: String,
    dir: std::path::PathBuf,
}

impl PrivateBus {
    /// None when there is no dbus-daemon to run.
    fn start() -> Option<Self> {
        use std::io::BufRead;
        let dir = std::env::temp_dir().join(format!("stafd-dbus-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                concat!(
                    "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n",
                    " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n",
                    "<busconfig><type>session</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>\n",
                    "<policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/>",
                    "<allow eavesdrop=\"true\"/><allow own=\"*\"/></policy>\n",
                    "</busconfig>\n"
                ),
                dir.join("bus").display()
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let mut address = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        Some(Self {
            child,
            address: address.trim().to_owned(),
            dir,
        })
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn on_a_bus_the_name_is_owned_and_root_sees_secrets() {
    let Some(bus) = PrivateBus::start() else {
        eprintln!("no dbus-daemon: test skipped");
        return;
    };
    tokio::time::timeout(Duration::from_secs(30), on_a_bus(&bus))
        .await
        .expect("the bus test hung");
}

async fn on_a_bus(bus: &PrivateBus) {
    let (handle, task, tx, queue) = steady_service().await;
    let server = serve(Some(&bus.address), dbus_config(handle.view.clone()), queue)
        .await
        .unwrap();
    let (_, queue2) = signals();
    let second = serve(Some(&bus.address), dbus_config(View::default()), queue2).await;
    assert!(matches!(second, Err(zbus::Error::NameTaken)), "{second:?}");

    let client = Builder::address(bus.address.as_str())
        .unwrap()
        .build()
        .await
        .unwrap();
    let mut stream = zbus::MessageStream::for_match_rule(
        "type='signal',interface='org.nvmexpress.staf'",
        &client,
        None,
    )
    .await
    .unwrap();
    // Root is told the secrets; anyone else is not.
    let root = nvmf_kernel::host::is_root();
    let list: Vec<OrderedDict> = client
        .call_method(
            Some(BUS_NAME),
            OBJECT_PATH,
            Some(INTERFACE),
            "list_controllers",
            &(false,),
        )
        .await
        .unwrap()
        .body()
        .deserialize()
        .unwrap();
    let secret = if root {
        "DHHC-1:00:c2VjcmV0:"
    } else {
        REDACTED
    };
    assert_eq!(list[0].get("dhchap-secret"), Some(secret));
    let info: String = client
        .call_method(
            Some(BUS_NAME),
            OBJECT_PATH,
            Some(DEBUG_INTERFACE),
            "process_info",
            &(),
        )
        .await
        .unwrap()
        .body()
        .deserialize()
        .unwrap();
    let hostkey = if root {
        "DHHC-1:00:aG9zdGtleQ==:"
    } else {
        REDACTED
    };
    assert!(
        info.contains(&format!(r#""hostkey": "{hostkey}""#)),
        "{info}"
    );

    tx.dc_removed();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("signal within 5 s")
            .unwrap()
            .unwrap();
        let hdr = msg.header();
        if hdr.member().is_some_and(|m| m.as_str() == "dc_removed") {
            assert_eq!(
                hdr.sender().map(|s| s.to_string()),
                server.unique_name().map(|s| s.to_string())
            );
            break;
        }
    }
    handle.send(Input::Shutdown);
    task.await.unwrap();
}

/// stafd's real producer (the detailed `get_all_log_pages` JSON of a DC in
/// each stage, with an empty page) read by stacd's real consumer gives the
/// typed state stacd decides on.
#[test]
fn stacd_reads_the_log_page_state_stafd_writes_for_every_stage() {
    use stacd::staf::parse_all_log_pages;
    use stas_daemon::dbus::contract::{DcOperation, LogPageState};

    for stage in [
        Stage::Waiting,
        Stage::Connecting,
        Stage::Registering,
        Stage::Querying,
        Stage::Fetching,
        Stage::Steady,
        Stage::Parked,
        Stage::Stopped,
    ] {
        // Connected from registration to steady state, as a DC task is.
        let connected = matches!(
            stage,
            Stage::Registering | Stage::Querying | Stage::Fetching | Stage::Steady
        );
        let expected = match stage {
            Stage::Connecting => LogPageState::InFlight(DcOperation::Connect),
            Stage::Registering => LogPageState::InFlight(DcOperation::Register),
            Stage::Querying => LogPageState::InFlight(DcOperation::GetSupportedLogPage),
            Stage::Fetching => LogPageState::InFlight(DcOperation::GetLogPage),
            Stage::Steady => LogPageState::Read,
            Stage::Waiting | Stage::Parked | Stage::Stopped => LogPageState::Disconnected,
        };
        let mut s = status(&[]);
        s.stage = stage;
        s.connected = connected;
        s.connect_attempts = 1;
        s.device = connected.then(|| "nvme0".to_owned());
        s.log_pages.clear();
        let json = all_log_pages_json(&[(s, None)], true, false);
        let dcs = parse_all_log_pages(&json).unwrap();
        assert_eq!(dcs.len(), 1);
        assert_eq!(dcs[0].state, expected, "{stage:?}: {json}");
        assert_eq!(dcs[0].complete, expected.is_read(), "{stage:?}");
    }
}

#[test]
fn the_interfaces_have_the_contracts_names() {
    use zbus::object_server::Interface;

    assert_eq!(
        <StafInterface as Interface>::name().as_str(),
        stas_daemon::dbus::contract::staf::INTERFACE
    );
    assert_eq!(
        <StafDebug as Interface>::name().as_str(),
        stas_daemon::dbus::contract::staf::DEBUG_INTERFACE
    );
}

/// The contract's client proxies reach every member stafd serves, with
/// the answers a hand-built call gets (tron is only read: other tests
/// set it).
#[tokio::test]
async fn the_contracts_proxies_reach_stafds_members() {
    use stas_daemon::dbus::contract::{proxy, StafDebugProxy, StafProxy};

    let d = Daemon::start().await;
    let staf: StafProxy<'_> = proxy(&d.client).await.unwrap();
    let debug: StafDebugProxy<'_> = proxy(&d.client).await.unwrap();
    // transport, traddr, trsvcid, subsysnqn, host-traddr, host-iface, host-nqn
    let (t, a, s, n, ht, hi, hn) = TID_ARGS;

    let raw: Vec<OrderedDict> = d.answer(INTERFACE, "list_controllers", &(true,)).await;
    assert_eq!(staf.list_controllers(true).await.unwrap(), raw);
    let pages = staf.get_log_pages(t, a, s, n, ht, hi, hn).await.unwrap();
    let raw: Vec<OrderedDict> = d.answer(INTERFACE, "get_log_pages", &TID_ARGS).await;
    assert_eq!((pages.len(), pages), (1, raw));
    let raw: String = d.answer(INTERFACE, "get_all_log_pages", &(false,)).await;
    assert_eq!(staf.get_all_log_pages(false).await.unwrap(), raw);

    let raw: String = d
        .answer(DEBUG_INTERFACE, "controller_info", &TID_ARGS)
        .await;
    let info = debug.controller_info(t, a, s, n, ht, hi, hn).await.unwrap();
    assert_eq!(info, raw);
    assert!(debug.process_info().await.unwrap().contains("\"hostid\""));
    let level = debug.log_level().await.unwrap();
    assert!(level == "DEBUG" || level == "INFO", "{level}");
    debug.tron().await.unwrap();
    d.stop().await;
}
