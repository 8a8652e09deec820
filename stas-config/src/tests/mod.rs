//! The configuration tests: shipped files, the service-config vectors,
//! value checks and names (entries, rendering, loading and sys.conf in
//! [`entries`]).

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "stas-config-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/data/config")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cid(fields: &[(&str, &str)]) -> Cid {
    fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn stafd(text: &str) -> (StafdConfig, Vec<Diagnostic>) {
    parse_stafd(text, "/etc/stas/stafd.conf").unwrap()
}

fn stacd(text: &str) -> (StacdConfig, Vec<Diagnostic>) {
    parse_stacd(text, "/etc/stas/stacd.conf").unwrap()
}

/// The diagnostics about `option`.
fn about<'a>(diags: &'a [Diagnostic], option: &str) -> Vec<&'a Diagnostic> {
    diags
        .iter()
        .filter(|d| d.option.as_deref() == Some(option))
        .collect()
}

fn cids(controllers: &[ControllerSpec]) -> Vec<Cid> {
    controllers.iter().map(|c| c.cid.clone()).collect()
}

// -- shipped files ------------------------------------------------------

#[test]
fn shipped_stafd_conf_gives_the_defaults() {
    let (config, diags) = stafd(&fixture("stafd.conf"));
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(config, StafdConfig::default());
    assert_eq!(config.global.kato, Some(30));
    assert!(config.persistent_connections && config.pleo && config.zeroconf);
    assert_eq!(
        config.zeroconf_persistence,
        Persistence::After(Duration::from_secs(259_200))
    );
}

#[test]
fn shipped_stacd_conf_gives_the_defaults() {
    let (config, diags) = stacd(&fixture("stacd.conf"));
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(config, StacdConfig::default());
    assert_eq!(config.global.kato, None);
    assert_eq!(config.disconnect_trtypes, BTreeSet::from([TrType::Tcp]));
}

#[test]
fn shipped_sys_conf_gives_the_etc_nvme_files() {
    let etc = TempDir::new();
    etc.write(
        "hostnqn",
        "nqn.2014-08.org.nvmexpress:uuid:01234567-0123-0123-0123-0123456789ab\n",
    );
    etc.write("hostid", "01234567-0123-0123-0123-0123456789ab\n");
    let (conf, diags) = parse_sysconf(&fixture("sys.conf"), "/etc/stas/sys.conf", &etc.0).unwrap();
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(
        conf,
        SysConf {
            hostnqn: "nqn.2014-08.org.nvmexpress:uuid:01234567-0123-0123-0123-0123456789ab"
                .to_owned(),
            hostid: "01234567-0123-0123-0123-0123456789ab".to_owned(),
            hostkey: None,
            symname: None,
        }
    );
}

#[test]
fn every_stafd_option_non_default() {
    let (config, diags) = stafd(&fixture("stafd-all-options.conf"));
    assert!(diags.is_empty(), "{diags:#?}");
    let g = &config.global;
    assert!(g.tron && g.hdr_digest && g.data_digest && g.ignore_iface);
    assert_eq!(g.kato, Some(60));
    assert_eq!(g.queue_size, Some(256));
    assert_eq!(g.reconnect_delay, Some(5));
    assert_eq!(g.ctrl_loss_tmo, Some(-1));
    assert_eq!(g.disable_sqflow, Some(false));
    assert_eq!(
        g.ip_family,
        IpFamily {
            v4: false,
            v6: true
        }
    );
    assert_eq!(
        (g.nr_io_queues, g.nr_write_queues, g.nr_poll_queues),
        (None, None, None)
    );
    assert!(!config.pleo && !config.zeroconf && !config.persistent_connections);
    assert_eq!(config.persistent, Persistent::No);
    assert_eq!(config.epcsd_poll_minutes, 5);
    assert_eq!(config.mdns_backend, MdnsBackend::Builtin);
    assert_eq!(
        config.zeroconf_persistence,
        Persistence::After(Duration::from_secs(36 * 3600))
    );
    // FC and loop controllers are kept (upstream drops them later, §18.1).
    assert_eq!(
        cids(&config.controllers),
        vec![
            cid(&[
                ("transport", "tcp"),
                ("traddr", "192.168.1.10"),
                ("trsvcid", "8009"),
                ("host-iface", "enp0s8"),
                ("kato", "15")
            ]),
            cid(&[
                ("transport", "rdma"),
                ("traddr", "2001:db8::1"),
                ("subsysnqn", "nqn.2014-08.org.nvmexpress.discovery")
            ]),
            cid(&[
                ("transport", "fc"),
                ("traddr", "nn-0x204600a098cbcac6:pn-0x204700a098cbcac6"),
                ("host-traddr", "nn-0x20000090fae0b5f5:pn-0x10000090fae0b5f5")
            ]),
            cid(&[("transport", "loop"), ("traddr", "")]),
        ]
    );
    let lines: Vec<usize> = config.controllers.iter().map(|c| c.line).collect();
    assert_eq!(lines, [26, 27, 28, 29]);
    assert_eq!(
        config.excludes,
        vec![
            cid(&[("host-iface", "enp0s3")]),
            cid(&[("transport", "tcp"), ("traddr", "fe80::2c6e:dee7:857:26bb")]),
        ]
    );
}

#[test]
fn every_stacd_option_non_default() {
    let (config, diags) = stacd(&fixture("stacd-all-options.conf"));
    assert!(diags.is_empty(), "{diags:#?}");
    let g = &config.global;
    assert!(g.tron && g.hdr_digest && g.data_digest && g.ignore_iface);
    assert_eq!(g.kato, Some(120));
    assert_eq!(
        (g.nr_io_queues, g.nr_write_queues, g.nr_poll_queues),
        (Some(8), Some(2), Some(1))
    );
    assert_eq!(g.queue_size, Some(512));
    assert_eq!(g.reconnect_delay, Some(20));
    assert_eq!(g.ctrl_loss_tmo, Some(3600));
    assert_eq!(g.disable_sqflow, Some(true));
    assert_eq!(
        g.ip_family,
        IpFamily {
            v4: true,
            v6: false
        }
    );
    assert_eq!(
        config.disconnect_scope,
        DisconnectScope::AllConnectionsMatchingDisconnectTrtypes
    );
    assert_eq!(
        config.disconnect_trtypes,
        BTreeSet::from([TrType::Tcp, TrType::Rdma, TrType::Fc])
    );
    assert_eq!(config.connect_attempts_on_ncc, 5);
    assert_eq!(config.controllers.len(), 2);
    assert_eq!(
        config.controllers[0]
            .cid
            .get("dhchap-secret")
            .map(String::as_str),
        Some("DHHC-1:00:ia6zGodOr4SEG0Zzaw398rpY0wqipUWj4jWjUh4HWUz6aQ2n:")
    );
    assert_eq!(
        config.controllers[1]
            .cid
            .get("transport")
            .map(String::as_str),
        Some("fc")
    );
    assert_eq!(
        config.excludes,
        vec![cid(&[("transport", "tcp"), ("traddr", "10.10.1.101")])]
    );
}

// -- §17.2 service config vectors --------------------------------------

const FILE_A: &str = "\
[Global]
tron=true
kato=200
ip-family=ipv6

[I/O controller connection management]
disconnect-scope = joe
disconnect-trtypes = bob
connect-attempts-on-ncc = 1

[Controllers]
controller=transport=tcp;traddr=100.100.100.100;host-iface=enp0s8
controller=transport=tcp;traddr=100.100.100.200;host-iface=enp0s7;dhchap-ctrl-secret=super-secret;hdr-digest=true;data-digest=true;nr-io-queues=8;nr-write-queues=6;nr-poll-queues=4;queue-size=400;kato=71;reconnect-delay=13;ctrl-loss-tmo=666;disable-sqflow=true
exclude=transport=tcp;traddr=10.10.10.10
";

fn file_a_controllers() -> Vec<Cid> {
    vec![
        cid(&[
            ("transport", "tcp"),
            ("traddr", "100.100.100.100"),
            ("host-iface", "enp0s8"),
        ]),
        cid(&[
            ("transport", "tcp"),
            ("traddr", "100.100.100.200"),
            ("host-iface", "enp0s7"),
            ("dhchap-ctrl-secret", "super-secret"),
            ("hdr-digest", "true"),
            ("data-digest", "true"),
            ("nr-io-queues", "8"),
            ("nr-write-queues", "6"),
            ("nr-poll-queues", "4"),
            ("queue-size", "400"),
            ("kato", "71"),
            ("reconnect-delay", "13"),
            ("ctrl-loss-tmo", "666"),
            ("disable-sqflow", "true"),
        ]),
    ]
}

#[test]
fn vector_file_a_stacd() {
    let (c, diags) = stacd(FILE_A);
    assert!(c.global.tron);
    assert!(!c.global.hdr_digest && !c.global.data_digest && !c.global.ignore_iface);
    assert_eq!(c.disconnect_scope, DisconnectScope::OnlyStasConnections);
    assert_eq!(c.disconnect_trtypes, BTreeSet::from([TrType::Tcp]));
    assert_eq!(
        c.global.ip_family,
        IpFamily {
            v4: false,
            v6: true
        }
    );
    assert_eq!(c.global.kato, Some(200));
    assert_eq!(cids(&c.controllers), file_a_controllers());
    assert_eq!(
        c.excludes,
        vec![cid(&[("transport", "tcp"), ("traddr", "10.10.10.10")])]
    );
    assert_eq!(c.connect_attempts_on_ncc, 2);

    let scope = about(&diags, "disconnect-scope");
    assert_eq!(scope.len(), 1);
    assert_eq!(
        scope[0].to_string(),
        "/etc/stas/stacd.conf:7: [I/O controller connection management] disconnect-scope: \
             \"joe\" is not a valid scope; expected only-stas-connections, \
             all-connections-matching-disconnect-trtypes or no-disconnect. \
             Using the default (only-stas-connections)."
    );
    let trtypes = about(&diags, "disconnect-trtypes");
    assert_eq!(trtypes.len(), 1);
    assert_eq!(trtypes[0].line, Some(8));
    assert!(trtypes[0].message.contains("\"bob\""), "{}", trtypes[0]);
    assert!(trtypes[0].message.ends_with("Using the default (tcp)."));
    // stacd needs nqn= on its controllers.
    assert_eq!(about(&diags, "controller").len(), 2);
    assert!(diags.iter().all(|d| d.severity == Severity::Warning));
}

#[test]
fn vector_file_a_stafd() {
    let (c, diags) = stafd(FILE_A);
    assert!(c.persistent_connections && c.pleo && !c.global.ignore_iface);
    assert!(c.zeroconf);
    assert_eq!(c.global.kato, Some(200));
    // Overrides not meaningful for discovery controllers are kept anyway.
    assert_eq!(cids(&c.controllers), file_a_controllers());
    let section: Vec<_> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert_eq!(section.len(), 1);
    assert_eq!(section[0].section, "I/O controller connection management");
    assert_eq!(section[0].line, Some(6));
    assert!(
        section[0].message.contains("belongs in stacd.conf"),
        "{}",
        section[0]
    );
}

#[test]
fn vector_rewrite_trtypes_and_ncc() {
    let (c, diags) = stacd(
        "[I/O controller connection management]\n\
             disconnect-trtypes = tcp+rdma+fc\n\
             connect-attempts-on-ncc = hello\n",
    );
    assert_eq!(
        c.disconnect_trtypes,
        BTreeSet::from([TrType::Tcp, TrType::Rdma, TrType::Fc])
    );
    assert_eq!(c.connect_attempts_on_ncc, 0);
    assert_eq!(about(&diags, "connect-attempts-on-ncc").len(), 1);
    assert_eq!(diags.len(), 1);
}

#[test]
fn vector_ip_family_variants() {
    for (text, v4, v6) in [
        ("ipv4", true, false),
        ("ipv6", false, true),
        ("ipv4+ipv6", true, true),
        ("ipv6+ipv4", true, true),
    ] {
        let (c, diags) = stafd(&format!("[Global]\nip-family={text}\n"));
        assert!(diags.is_empty());
        assert_eq!(c.global.ip_family, IpFamily { v4, v6 }, "{text}");
    }
    for bad in ["IPv4", "ipv4 + ipv6", "ipv4,ipv6", "4"] {
        let (c, diags) = stafd(&format!("[Global]\nip-family={bad}\n"));
        assert_eq!(c.global.ip_family, IpFamily::default());
        assert_eq!(about(&diags, "ip-family").len(), 1, "{bad}");
    }
}

#[test]
fn vector_queue_size_out_of_range() {
    let (c, diags) = stacd("[Global]\nqueue-size=5\n");
    assert_eq!(c.global.queue_size, None);
    assert_eq!(
        diags[0].to_string(),
        "/etc/stas/stacd.conf:2: [Global] queue-size: \"5\" is not within range 16..1024; \
             expected a whole number from 16 to 1024. \
             Using the default (not set: the kernel default applies)."
    );
    for (text, expected) in [
        ("16", Some(16)),
        ("1024", Some(1024)),
        ("1025", None),
        ("400", Some(400)),
    ] {
        let (c, _) = stacd(&format!("[Global]\nqueue-size={text}\n"));
        assert_eq!(c.global.queue_size, expected, "{text}");
    }
}

#[test]
fn vector_bad_section_and_bad_option() {
    let (_, diags) = stafd("[BadSection]\nfoo=bar\n");
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].severity, Severity::Error);
    assert_eq!(diags[0].line, Some(1));
    assert_eq!(diags[0].section, "BadSection");
    assert!(diags[0].to_string().starts_with(
        "/etc/stas/stafd.conf:1: [BadSection] unknown section; stafd.conf accepts [Global], "
    ));

    let (_, diags) = stacd("[Global]\n\nbad-option=something\n");
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].severity, Severity::Error);
    assert_eq!(diags[0].line, Some(3));
    assert_eq!(diags[0].option.as_deref(), Some("bad-option"));
    assert!(diags[0].to_string().starts_with(
            "/etc/stas/stacd.conf:3: [Global] bad-option: unknown option; [Global] accepts tron, hdr-digest,"
        ));
}

#[test]
fn last_value_rule() {
    assert_eq!(stacd("[Global]\nkato=5\n").0.global.kato, Some(5));
    assert_eq!(stacd("[Global]\n").0.global.kato, None);
    assert_eq!(stacd("[Global]\nkato=5\nkato=7\n").0.global.kato, Some(7));
    assert_eq!(stacd("[Global]\nkato=5\n  7\n").0.global.kato, Some(7));
    assert_eq!(
        stacd("[Global]\nkato=5\n[Controllers]\n[Global]\nkato=9\n")
            .0
            .global
            .kato,
        Some(9)
    );
    // Only the last value is checked: an earlier bad one is harmless.
    let (c, diags) = stacd("[Global]\nkato=abc\nkato=8\n");
    assert_eq!(c.global.kato, Some(8));
    assert!(diags.is_empty());
}

// -- value checks --------------------------------------------------------

#[test]
fn invalid_values_fall_back_to_daemon_defaults() {
    let (c, diags) = stafd("[Global]\nkato=abc\ntron=yes\nhdr-digest=1\nreconnect-delay=-3\nctrl-loss-tmo=0x10\npleo=on\n");
    assert_eq!(c, StafdConfig::default());
    assert_eq!(diags.len(), 6);
    assert_eq!(
        diags[0].to_string(),
        "/etc/stas/stafd.conf:2: [Global] kato: \"abc\" is not an integer; expected a whole \
             number of seconds (0 to 4294967295). Using the default (30)."
    );
    assert_eq!(diags[0].file, "/etc/stas/stafd.conf");
    assert_eq!(diags[0].line, Some(2));
    assert_eq!(diags[0].section, "Global");
    assert_eq!(diags[0].option.as_deref(), Some("kato"));
    assert!(diags[1].to_string().ends_with(
            "tron: \"yes\" is not a boolean; expected true or false (any case). Using the default (false)."
        ));
    assert!(diags[3].message.contains("is out of range"), "{}", diags[3]);
    assert!(
        diags[5].message.ends_with("Using the default (enabled)."),
        "{}",
        diags[5]
    );
    // stacd has no kato default.
    let (c, diags) = stacd("[Global]\nkato=1.5\n");
    assert_eq!(c.global.kato, None);
    assert!(diags[0]
        .message
        .ends_with("Using the default (not set: the kernel default applies)."));
}

#[test]
fn python_int_and_bool_spellings() {
    for (text, expected) in [
        ("10", Some(10)),
        ("+10", Some(10)),
        ("1_0", Some(10)),
        ("007", Some(7)),
        ("0", Some(0)),
        ("4294967295", Some(u32::MAX)),
        ("4294967296", None),
        ("1__0", None),
        ("_1", None),
        ("1_", None),
        ("0x10", None),
        ("1.5", None),
        ("", None),
        ("-0", Some(0)),
    ] {
        assert_eq!(
            stacd(&format!("[Global]\nkato={text}\n")).0.global.kato,
            expected,
            "{text:?}"
        );
    }
    for (text, expected) in [("TRUE", true), ("False", false), ("tRuE", true)] {
        assert_eq!(
            stafd(&format!("[Global]\ntron={text}\n")).0.global.tron,
            expected
        );
    }
    let (c, _) = stacd("[Global]\nctrl-loss-tmo=-1\n");
    assert_eq!(c.global.ctrl_loss_tmo, Some(-1));
    let (c, d) = stacd("[Global]\nctrl-loss-tmo=99999999999\n");
    assert_eq!(c.global.ctrl_loss_tmo, None);
    assert_eq!(d.len(), 1);
}

#[test]
fn bare_keys_are_invalid_values() {
    let (c, diags) = stafd("[Global]\ntron\n[Controllers]\ncontroller\nexclude\n");
    assert_eq!(c, StafdConfig::default());
    assert_eq!(diags.len(), 3);
    assert!(diags[0]
        .message
        .starts_with("has no value (the line has no \"=\")"));
    // A bare exclude must not become "exclude everything".
    assert!(c.excludes.is_empty());
    let (c, diags) = stacd("[I/O controller connection management]\ndisconnect-trtypes\n");
    assert_eq!(c.disconnect_trtypes, BTreeSet::from([TrType::Tcp]));
    assert_eq!(diags.len(), 1);
}

#[test]
fn zeroconf_persistence() {
    let get = |v: &str| {
        let (c, d) = stafd(&format!(
            "[Discovery controller connection management]\nzeroconf-connections-persistence={v}\n"
        ));
        (c.zeroconf_persistence, d.len())
    };
    assert_eq!(get("-1"), (Persistence::Never, 0));
    assert_eq!(get("-72hours"), (Persistence::Never, 0));
    assert_eq!(get("0"), (Persistence::After(Duration::ZERO), 0));
    assert_eq!(
        get("0.5"),
        (Persistence::After(Duration::from_millis(500)), 0)
    );
    assert_eq!(
        get("3d5h"),
        (Persistence::After(Duration::from_secs(277_200)), 0)
    );
    assert_eq!(get("inf"), (Persistence::Never, 0));
    assert_eq!(get("blah"), (DEFAULT_PERSISTENCE, 1));
    assert_eq!(get("nan"), (DEFAULT_PERSISTENCE, 1));
    assert_eq!(get("1 week"), (DEFAULT_PERSISTENCE, 1));
    assert_eq!(get(""), (DEFAULT_PERSISTENCE, 1));
}

#[test]
fn persistent_and_epcsd_poll_interval() {
    let get = |v: &str, m: &str| {
        let (c, d) = stafd(&format!(
            "[Discovery controller connection management]\npersistent={v}\n\
                 epcsd-poll-interval-minutes={m}\n"
        ));
        (c.persistent, c.epcsd_poll_interval(), d.len())
    };
    let min = |n: u64| Duration::from_secs(n * 60);
    assert_eq!(
        StafdConfig::default().persistent,
        Persistent::Force,
        "today's behaviour: every DC kept connected"
    );
    assert_eq!(get("auto", "15"), (Persistent::Auto, min(15), 0));
    assert_eq!(get("no", "1"), (Persistent::No, min(1), 0));
    assert_eq!(get("force", "120"), (Persistent::Force, min(120), 0));
    // Anything else falls back to the default, with a diagnostic each.
    assert_eq!(get("yes", "0"), (Persistent::Force, min(15), 2));
    assert_eq!(get("AUTO", "-5"), (Persistent::Force, min(15), 2));
    assert_eq!(get("", "quarter-hourly"), (Persistent::Force, min(15), 2));

    let (c, d) = stafd(
        "[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1;persistent=auto\n\
             controller = transport=tcp;traddr=10.0.0.2;persistent=sometimes\n",
    );
    assert_eq!(
        c.controllers[0].cid.get("persistent").map(String::as_str),
        Some("auto")
    );
    assert_eq!(c.controllers[1].cid.get("persistent"), None);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].message
            .contains("\"sometimes\" is not valid; expected no, auto or force"),
        "{}",
        d[0].message
    );
    let (c, d) = stacd(
        "[Controllers]\ncontroller = transport=tcp;traddr=10.0.0.1;nqn=nqn.a;persistent=auto\n",
    );
    assert_eq!(c.controllers[0].cid.get("persistent"), None);
    assert!(d[0].message.contains("stafd.conf"), "{d:?}");
}

#[test]
fn connect_attempts_on_ncc() {
    let get = |v: &str| {
        let (c, d) = stacd(&format!(
            "[I/O controller connection management]\nconnect-attempts-on-ncc={v}\n"
        ));
        (c.connect_attempts_on_ncc, d.len())
    };
    assert_eq!(get("0"), (0, 0));
    assert_eq!(get("1"), (2, 0));
    assert_eq!(get("2"), (2, 0));
    assert_eq!(get("10"), (10, 0));
    // Deliberate fix: negatives are invalid.
    assert_eq!(get("-1"), (0, 1));
}

#[test]
fn disconnect_trtypes_items() {
    let get = |v: &str| {
        let (c, d) = stacd(&format!(
            "[I/O controller connection management]\ndisconnect-trtypes={v}\n"
        ));
        (
            c.disconnect_trtypes.into_iter().collect::<Vec<_>>(),
            d.len(),
        )
    };
    assert_eq!(get("rdma"), (vec![TrType::Rdma], 0));
    assert_eq!(get("fc+tcp+fc"), (vec![TrType::Tcp, TrType::Fc], 0));
    assert_eq!(get("tcp+bob"), (vec![TrType::Tcp], 1));
    assert_eq!(get("rdma+loop"), (vec![TrType::Rdma], 1));
    assert_eq!(get("tcp + rdma"), (vec![TrType::Tcp], 1));
    assert_eq!(get("TCP"), (vec![TrType::Tcp], 1));
    assert_eq!(get(""), (vec![TrType::Tcp], 1));
}

// -- names ---------------------------------------------------------------

#[test]
fn section_names_are_case_sensitive_option_names_are_not() {
    let (c, diags) = stafd("[global]\nkato=5\n[Global]\nKATO = 7\n  \n");
    assert_eq!(c.global.kato, Some(7));
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].section, "global");
    assert!(
        diags[0].message.contains("Did you mean [Global]?"),
        "{}",
        diags[0]
    );
    let (_, diags) = stafd("[ Global ]\n");
    assert!(diags[0].message.contains("Did you mean [Global]?"));
}

#[test]
fn default_section_is_ordinary() {
    let (c, diags) = stafd("[DEFAULT]\nkato=5\n[Global]\n");
    assert_eq!(c.global.kato, Some(30));
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].section, "DEFAULT");
}

#[test]
fn duplicate_sections_merge_with_a_warning() {
    let (c, diags) = stafd(
        "[Controllers]\ncontroller=transport=tcp;traddr=1.1.1.1\n[Global]\ntron=true\n\
             [Controllers]\ncontroller=transport=tcp;traddr=2.2.2.2\n",
    );
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].line, Some(5));
    assert!(
        diags[0]
            .message
            .contains("[Controllers] repeated (first at line 1)"),
        "{diags:?}"
    );
    assert!(c.global.tron);
    let lines: Vec<usize> = c.controllers.iter().map(|c| c.line).collect();
    assert_eq!(lines, [2, 6]);
}

#[test]
fn legacy_and_misplaced_options_are_reported_with_hints() {
    let (c, diags) = stafd(
        "[Global]\npersistent-connections=false\nnr-io-queues=4\nzeroconf=disabled\n\
             [Controllers]\nblacklist=transport=tcp\n",
    );
    // Reported and ignored.
    assert!(c.persistent_connections && c.zeroconf && c.excludes.is_empty());
    assert_eq!(c.global.nr_io_queues, None);
    assert_eq!(diags.len(), 4);
    assert!(diags.iter().all(|d| d.severity == Severity::Error));
    assert!(diags[0]
        .message
        .contains("moved to [Discovery controller connection management]"));
    assert!(diags[1].message.contains("only valid in stacd.conf"));
    assert!(diags[2]
        .message
        .contains("zeroconf belongs in [Service Discovery]"));
    assert!(diags[3].message.contains("renamed to exclude="));
    let (_, diags) =
        stacd("[Global]\nsticky-connections=disabled\nudev-rule=enabled\npleo=enabled\n");
    assert!(diags[0].message.contains("disconnect-scope"));
    assert!(diags[1].message.contains("udev rules"));
    assert!(diags[2].message.contains("only valid in stafd.conf"));
    let (_, diags) = stacd("[Service Discovery]\nzeroconf=enabled\n");
    assert!(diags[0].message.contains("belongs in stafd.conf"));
}

mod entries;
