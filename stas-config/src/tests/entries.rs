//! controller=/exclude= entries, rendering, loading and sys.conf.

use super::*;

// -- controller= / exclude= ----------------------------------------------

#[test]
fn vector_parse_cid() {
    for (input, expected) in [
        ("", cid(&[])),
        ("noequalsign", cid(&[])),
        ("key=val=extra", cid(&[])),
        (
            "transport=tcp;noequalsign;traddr=10.10.10.10",
            cid(&[("transport", "tcp"), ("traddr", "10.10.10.10")]),
        ),
        (
            " transport = tcp ; traddr = localhost ; ; ; kato=31",
            cid(&[
                ("transport", "tcp"),
                ("traddr", "localhost"),
                ("kato", "31"),
            ]),
        ),
        ("transport=tcp,traddr=1.1.1.1", cid(&[])),
        (
            "transport=tcp;traddr=fe80::1 # comment",
            cid(&[("transport", "tcp"), ("traddr", "fe80::1 # comment")]),
        ),
        (
            "host-traddr=1.2.3.4,host-iface=eth0;transport=tcp",
            cid(&[("transport", "tcp")]),
        ),
        (
            "Transport=TCP;TRADDR=1.1.1.1",
            cid(&[("Transport", "TCP"), ("TRADDR", "1.1.1.1")]),
        ),
        (
            "transport=tcp;;traddr=1.1.1.1;",
            cid(&[("transport", "tcp"), ("traddr", "1.1.1.1")]),
        ),
        (
            "transport=tcp;traddr=",
            cid(&[("transport", "tcp"), ("traddr", "")]),
        ),
        (
            "transport=tcp;traddr=1.1.1.1;transport=rdma",
            cid(&[("transport", "rdma"), ("traddr", "1.1.1.1")]),
        ),
        ("dhchap-secret=DHHC-1:00:abc=:", cid(&[])),
        ("=value", cid(&[("", "value")])),
        ("key=", cid(&[("key", "")])),
        ("nqn=nqn.a;subsysnqn=nqn.b", cid(&[("subsysnqn", "nqn.a")])),
        ("subsysnqn=nqn.b", cid(&[("subsysnqn", "nqn.b")])),
    ] {
        assert_eq!(parse_cid(input), expected, "{input:?}");
    }
}

#[test]
fn controller_entries_through_the_file() {
    let (c, diags) = stafd(
        "[Controllers]\n\
         controller = transport=tcp;traddr=fe80::1 # comment\n\
         controller = transport=tcp,traddr=1.1.1.1\n\
         controller = Transport=tcp;traddr=1.1.1.1\n\
         controller = transport=tcp;traddr=1.1.1.1;dhchap-secret=DHHC-1:00:abc=:\n\
         controller = transport=bogus;traddr=1.1.1.1\n",
    );
    assert_eq!(c.controllers.len(), 5);
    let messages: Vec<(Option<usize>, &str)> =
        diags.iter().map(|d| (d.line, d.message.as_str())).collect();
    let has = |line: usize, needle: &str| {
        assert!(
            messages
                .iter()
                .any(|(l, m)| *l == Some(line) && m.contains(needle)),
            "line {line}: {needle:?} not in {messages:#?}"
        );
    };
    has(2, "inline comments are not supported");
    has(3, "not \",\"");
    has(3, "empty entry");
    has(4, "did you mean \"transport\"?");
    has(4, "no transport field");
    has(5, "a value cannot contain \"=\"");
    has(6, "transport \"bogus\" is not tcp, rdma, fc or loop");
    assert!(diags
        .iter()
        .all(|d| d.option.as_deref() == Some("controller")));
}

#[test]
fn continuation_lines_are_separate_controllers() {
    let (c, diags) = stafd(
        "[Controllers]\ncontroller =\n    transport=tcp;traddr=1.1.1.1\n    transport=tcp;traddr=2.2.2.2\n",
    );
    assert_eq!(
        cids(&c.controllers),
        vec![
            cid(&[]),
            cid(&[("transport", "tcp"), ("traddr", "1.1.1.1")]),
            cid(&[("transport", "tcp"), ("traddr", "2.2.2.2")]),
        ]
    );
    assert_eq!(c.controllers[2].line, 4);
    assert_eq!(diags.len(), 1, "{diags:#?}");
}

#[test]
fn invalid_overrides_are_dropped_so_global_applies() {
    let (c, diags) = stacd(
        "[Controllers]\ncontroller=transport=tcp;traddr=1.1.1.1;nqn=nqn.x;kato=abc;hdr-digest=TRUE;\
         queue-size=8;ctrl-loss-tmo=-1;nr-io-queues=+4;disable-sqflow=nope\n",
    );
    assert_eq!(
        cids(&c.controllers),
        vec![cid(&[
            ("transport", "tcp"),
            ("traddr", "1.1.1.1"),
            ("subsysnqn", "nqn.x"),
            ("hdr-digest", "true"),
            ("ctrl-loss-tmo", "-1"),
            ("nr-io-queues", "4"),
        ])]
    );
    assert_eq!(diags.len(), 3, "{diags:#?}");
    assert!(diags.iter().any(|d| {
        d.to_string()
            == "/etc/stas/stacd.conf:2: [Controllers] controller: override kato: \"abc\" is not an \
            integer; expected a whole number of seconds (0 to 4294967295). Ignored, so \
            [Global] kato applies to this controller."
    }));
}

#[test]
fn overrides_typed_from_the_normalised_cid() {
    let (c, _) = stacd(
        "[Controllers]\ncontroller=transport=tcp;traddr=1.1.1.1;nqn=nqn.x;kato=abc;hdr-digest=TRUE;\
         queue-size=8;ctrl-loss-tmo=-1;nr-io-queues=+4;disable-sqflow=nope;reconnect-delay=7\n",
    );
    assert_eq!(
        ControllerOverrides::from_cid(&c.controllers[0].cid),
        ControllerOverrides {
            hdr_digest: Some(true),
            ctrl_loss_tmo: Some(-1),
            nr_io_queues: Some(4),
            reconnect_delay: Some(7),
            ..ControllerOverrides::default()
        }
    );
    // Every override key has a typed field.
    for key in OVERRIDE_KEYS {
        let value = if key.ends_with("digest") || key == "disable-sqflow" {
            "false"
        } else {
            "16"
        };
        let one = ControllerOverrides::from_cid(&cid(&[(key, value)]));
        assert_ne!(one, ControllerOverrides::default(), "{key}");
    }
}

#[test]
fn exclude_entries() {
    let (c, diags) = stafd(
        "[Controllers]\n\
         exclude = transport=tcp;traddr=10.10.10.10;host-traddr=1.2.3.4;nqn=nqn.x;kato=30\n\
         exclude = host-traddr=1.2.3.4\n\
         exclude =\n\
         exclude = transport=tcp,traddr=1.1.1.1\n",
    );
    assert_eq!(
        c.excludes,
        vec![cid(&[
            ("transport", "tcp"),
            ("traddr", "10.10.10.10"),
            ("subsysnqn", "nqn.x"),
            ("kato", "30"),
        ]),]
    );
    let everything: Vec<Option<usize>> = diags
        .iter()
        .filter(|d| {
            d.message
                .contains("is ignored (nvme-stas would exclude EVERY controller")
        })
        .map(|d| d.line)
        .collect();
    assert_eq!(everything, [Some(3), Some(4), Some(5)]);
    assert!(diags
        .iter()
        .any(|d| d.line == Some(2) && d.message.contains("host-traddr")));
}

// -- rendering -----------------------------------------------------------

/// What re-parsing a rendering gives back: no line numbers, secrets
/// redacted.
fn without_lines(mut controllers: Vec<ControllerSpec>) -> Vec<ControllerSpec> {
    for c in &mut controllers {
        c.line = 0;
        for key in SECRET_KEYS {
            if let Some(v) = c.cid.get_mut(key) {
                *v = "<redacted>".to_owned();
            }
        }
    }
    controllers
}

/// Renders, re-parses, compares; returns the re-parse's diagnostics.
fn stafd_round_trip(config: &StafdConfig) -> Vec<Diagnostic> {
    let text = config.to_string();
    let (again, diags) = parse_stafd(&text, "rendered").unwrap();
    let mut expected = config.clone();
    expected.controllers = without_lines(expected.controllers);
    let mut again = again;
    again.controllers = without_lines(again.controllers);
    assert_eq!(again, expected, "{text}");
    diags
}

fn stacd_round_trip(config: &StacdConfig) -> Vec<Diagnostic> {
    let text = config.to_string();
    let (again, diags) = parse_stacd(&text, "rendered").unwrap();
    let mut expected = config.clone();
    expected.controllers = without_lines(expected.controllers);
    let mut again = again;
    again.controllers = without_lines(again.controllers);
    assert_eq!(again, expected, "{text}");
    diags
}

#[test]
fn effective_configuration_lists_every_option() {
    let text = StafdConfig::default().to_string();
    for line in [
        "[Global]",
        "tron = false",
        "kato = 30",
        "# queue-size = (kernel default)",
        "# ctrl-loss-tmo = (kernel default)",
        "ip-family = ipv4+ipv6",
        "pleo = enabled",
        "[Service Discovery]",
        "zeroconf = enabled",
        "[Discovery controller connection management]",
        "persistent-connections = true",
        "zeroconf-connections-persistence = 72hours",
        "persistent = force",
        "epcsd-poll-interval-minutes = 15",
        "[Controllers]",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing from\n{text}"
        );
    }
    assert!(!text.contains("nr-io-queues"));
    let text = StacdConfig::default().to_string();
    for line in [
        "# kato = (kernel default)",
        "# nr-io-queues = (kernel default)",
        "[I/O controller connection management]",
        "disconnect-scope = only-stas-connections",
        "disconnect-trtypes = tcp",
        "connect-attempts-on-ncc = 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing from\n{text}"
        );
    }
    assert!(!text.contains("pleo"));
}

#[test]
fn render_then_parse_round_trips() {
    // A clean configuration renders to a clean file.
    assert!(stafd_round_trip(&StafdConfig::default()).is_empty());
    assert!(stafd_round_trip(&stafd(&fixture("stafd-all-options.conf")).0).is_empty());
    assert!(stacd_round_trip(&stacd(&fixture("stacd-all-options.conf")).0).is_empty());
    stafd_round_trip(&stafd(FILE_A).0);
    stafd_round_trip(&stafd("[Controllers]\nexclude=\ncontroller=\ncontroller==x;nqn=nqn.y\n").0);
    for v in ["-1", "0", "0.5", "90", "1.25", "3d5h"] {
        stafd_round_trip(
            &stafd(&format!(
                "[Discovery controller connection management]\nzeroconf-connections-persistence={v}\n"
            ))
            .0,
        );
    }
    assert!(stacd_round_trip(&StacdConfig::default()).is_empty());
    stacd_round_trip(&stacd("[Global]\nkato=5\n[I/O controller connection management]\ndisconnect-scope=no-disconnect\ndisconnect-trtypes=fc+rdma\n").0);
}

#[test]
fn rendering_redacts_secrets() {
    let (config, _) = stacd(&fixture("stacd-all-options.conf"));
    let text = config.to_string();
    assert!(
        text.contains(
            "controller = transport=tcp;traddr=10.10.1.100;trsvcid=4420;nqn=nqn.1988-11.com.dell:\
         PowerSANxxx:01:20210225100113-454f73093ceb4847a7bdfc6e34ae8e28;dhchap-secret=<redacted>\n"
        ),
        "{text}"
    );
    assert!(!text.contains("DHHC-1"));
    let (again, _) = parse_stacd(&text, "rendered").unwrap();
    let mut expected = config.clone();
    expected.controllers[0]
        .cid
        .insert("dhchap-secret".to_owned(), "<redacted>".to_owned());
    assert_eq!(cids(&again.controllers), cids(&expected.controllers));
    assert_eq!(again.global, expected.global);
    // FA file A's controller secret too.
    let text = stafd(FILE_A).0.to_string();
    assert!(text.contains("dhchap-ctrl-secret=<redacted>") && !text.contains("super-secret"));
}

// -- loading ---------------------------------------------------------------

#[test]
fn syntax_errors_are_errors_with_the_line() {
    let err = parse_stafd(
        "[Global]\ntron=true\n\n[Controllers\n",
        "/etc/stas/stafd.conf",
    )
    .unwrap_err();
    assert!(
        matches!(err, ConfigError::Syntax { line: 4, .. }),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .starts_with("/etc/stas/stafd.conf:4: malformed section header"));
    let err = parse_stacd("kato=5\n", "x.conf").unwrap_err();
    assert!(err.to_string().starts_with("x.conf:1: "), "{err}");
}

#[test]
fn loading_files() {
    let dir = TempDir::new();
    // Missing: defaults, nothing to say.
    let (c, d) = load_stafd(&dir.path("nope.conf")).unwrap();
    assert_eq!((c, d.len()), (StafdConfig::default(), 0));
    let (c, d) = load_stacd(&dir.path("nope.conf")).unwrap();
    assert_eq!((c, d.len()), (StacdConfig::default(), 0));
    // Diagnostics name the path.
    let path = dir.write("stafd.conf", "[Global]\nkato=x\n");
    let (_, d) = load_stafd(&path).unwrap();
    assert_eq!(d[0].file, path.display().to_string());
    // Not a regular file (a directory) and not UTF-8: errors.
    assert!(matches!(
        load_stafd(&dir.0),
        Err(ConfigError::Refused { .. })
    ));
    let bad = dir.0.join("bad.conf");
    std::fs::write(&bad, b"[Global]\n\ntron=\xff\n").unwrap();
    let err = load_stacd(&bad).unwrap_err();
    assert!(
        matches!(err, ConfigError::Syntax { line: 3, .. }),
        "{err:?}"
    );
}

// -- sys.conf --------------------------------------------------------------

const NQN: &str = "nqn.2014-08.org.nvmexpress:uuid:9aae2691-b275-4b64-8bfe-5da429a2bab9";
const ID: &str = "56529e15-0f3e-4ede-87e2-63932a4adb99";

fn sysconf(text: &str, etc: &TempDir) -> Result<(SysConf, Vec<Diagnostic>), ConfigError> {
    parse_sysconf(text, "/etc/stas/sys.conf", &etc.0)
}

#[test]
fn vector_sysconf_values_as_given() {
    let etc = TempDir::new();
    let key = "DHHC-1:03:qwertyuiopasdfghjklzxcvbnm0123456789QWERTYUIOPASDFGHJKLZXCVBNM010101010101010101010101010101:";
    let (conf, diags) = sysconf(
        &format!("[Host]\nnqn={NQN}\nid={ID}\nkey={key}\nsymname=Bart-Simpson\n"),
        &etc,
    )
    .unwrap();
    assert!(diags.is_empty());
    assert_eq!(
        conf,
        SysConf {
            hostnqn: NQN.to_owned(),
            hostid: ID.to_owned(),
            hostkey: Some(key.to_owned()),
            symname: Some("Bart-Simpson".to_owned()),
        }
    );
    assert!(!conf.to_string().contains("DHHC"));
}

#[test]
fn vector_sysconf_fatal_cases() {
    let etc = TempDir::new();
    etc.write("hostid", ID);
    // Empty file: upstream leaves the NQN undefined and fails later.
    etc.write("empty", "");
    let empty = etc.0.join("empty");
    let err = sysconf(&format!("[Host]\nnqn=file://{}\n", empty.display()), &etc).unwrap_err();
    assert!(err.to_string().contains("Host NQN is empty"), "{err}");
    // A device is no key file (upstream read /dev/null as empty).
    let err = sysconf("[Host]\nnqn=file:///dev/null\n", &etc).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let err = sysconf(
        &format!("[Host]\nnqn=qnq.2014-08.org.nvmexpress:uuid:x\nid={ID}\n"),
        &etc,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "/etc/stas/sys.conf:2: [Host] nqn: Host NQN \"qnq.2014-08.org.nvmexpress:uuid:x\" \
         should start with \"nqn.\" (as configured)"
    );
    let missing = "file:///some/non/existing/file/!@#";
    let err = sysconf(
        &format!("[Host]\nnqn={missing}\nid={missing}\nsymname={missing}\n"),
        &etc,
    )
    .unwrap_err();
    assert!(err.to_string().starts_with(
        "/etc/stas/sys.conf:2: [Host] nqn: Error reading mandatory Host NQN (see stasadm --help): \
         /some/non/existing/file/!@#: "
    ), "{err}");
    let err = sysconf(&format!("[Host]\nnqn={NQN}\nid={missing}\n"), &etc).unwrap_err();
    assert!(err.to_string().starts_with(
        "/etc/stas/sys.conf:3: [Host] id: Error reading mandatory Host ID (see stasadm --help): "
    ), "{err}");
    let long = format!("nqn.{}", "a".repeat(220));
    assert_eq!(long.len(), 224);
    let err = sysconf(&format!("[Host]\nnqn={long}\n"), &etc).unwrap_err();
    assert!(
        err.to_string()
            .contains("is 224 characters long; the maximum is 223"),
        "{err}"
    );
    let ok = format!("nqn.{}", "a".repeat(219));
    assert_eq!(
        sysconf(&format!("[Host]\nnqn={ok}\n"), &etc)
            .unwrap()
            .0
            .hostnqn,
        ok
    );
    // Explicitly empty or bare.
    sysconf("[Host]\nnqn=\n", &etc).unwrap_err();
    sysconf("[Host]\nnqn\n", &etc).unwrap_err();
}

#[test]
fn vector_sysconf_symname_file_missing_is_a_warning() {
    let etc = TempDir::new();
    let (conf, diags) = sysconf(
        &format!("[Host]\nnqn={NQN}\nid={ID}\nsymname=file:///some/non/existing/file/!@#\n"),
        &etc,
    )
    .unwrap();
    assert_eq!(conf.symname, None);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].line, Some(4));
    assert!(diags[0]
        .message
        .starts_with("Error reading host symbolic name (will remain undefined): "));
}

#[test]
fn sysconf_missing_file_uses_etc_nvme() {
    let etc = TempDir::new();
    let sys = etc.path("sys.conf");
    // No hostnqn file: fatal, naming it.
    let err = load_sysconf(&sys, &etc.0).unwrap_err();
    assert!(
        err.to_string().contains("Error reading mandatory Host NQN"),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains(&etc.path("hostnqn").display().to_string()));
    etc.write("hostnqn", &format!("{NQN}   trailing words\nsecond line\n"));
    let err = load_sysconf(&sys, &etc.0).unwrap_err();
    assert!(
        err.to_string().contains("Error reading mandatory Host ID"),
        "{err}"
    );
    etc.write("hostid", &format!("\t{ID}\n"));
    let (conf, diags) = load_sysconf(&sys, &etc.0).unwrap();
    assert!(diags.is_empty());
    assert_eq!(conf.hostnqn, NQN);
    assert_eq!(conf.hostid, ID);
    assert_eq!((conf.hostkey, conf.symname), (None, None));
    etc.write("hostkey", "DHHC-1:00:abc:\n");
    let (conf, _) = load_sysconf(&sys, &etc.0).unwrap();
    assert_eq!(conf.hostkey.as_deref(), Some("DHHC-1:00:abc:"));
}

#[test]
fn sysconf_file_references() {
    let etc = TempDir::new();
    let nqn = etc.write("nqn", &format!("{NQN}\n"));
    let sym = etc.write("symname", "my host name\n");
    let empty = etc.write("empty", "\n");
    let id = etc.write("id", "");
    let text = format!(
        "[Host]\nnqn=file://{}\nid=file://{}\nsymname=file://{}\nkey=file://{}\n",
        nqn.display(),
        id.display(),
        sym.display(),
        empty.display()
    );
    let (conf, diags) = sysconf(&text, &etc).unwrap();
    assert_eq!(conf.hostnqn, NQN);
    // Only the first word of the first line.
    assert_eq!(conf.symname.as_deref(), Some("my"));
    assert_eq!(conf.hostkey, None);
    // An empty ID is accepted, with a warning.
    assert_eq!(conf.hostid, "");
    assert_eq!(about(&diags, "id").len(), 1);
    // A configured key file that is missing is worth a warning.
    let text = format!("[Host]\nnqn={NQN}\nid={ID}\nkey=file:///no/such/key\n");
    let (conf, diags) = sysconf(&text, &etc).unwrap();
    assert_eq!(conf.hostkey, None);
    assert_eq!(about(&diags, "key").len(), 1);
}

#[test]
fn sysconf_reports_unknown_names_and_continuations() {
    let etc = TempDir::new();
    let (conf, diags) = sysconf(
        &format!("[Host]\nhostnqn=nqn.x\nnqn={NQN}\n   extra\nnqn={NQN}\nid={ID}\n[Other]\n"),
        &etc,
    )
    .unwrap();
    assert_eq!(conf.hostnqn, NQN);
    assert!(diags.iter().all(|d| d.severity == Severity::Warning));
    let lines: Vec<Option<usize>> = diags.iter().map(|d| d.line).collect();
    assert_eq!(lines, [Some(2), Some(7)], "{diags:#?}");
    // Continuation lines after the last occurrence are ignored with a warning.
    let (conf, diags) = sysconf(&format!("[Host]\nnqn={NQN}\n   extra\nid={ID}\n"), &etc).unwrap();
    assert_eq!(conf.hostnqn, NQN);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].line, Some(3));
}

#[test]
fn diagnostic_display_without_line_or_option() {
    let d = Diagnostic {
        file: "f".to_owned(),
        line: None,
        section: String::new(),
        option: None,
        message: "m".to_owned(),
        severity: Severity::Warning,
    };
    assert_eq!(d.to_string(), "f: m");
}
