//! A private dbus-daemon for tests that run the daemons and their control
//! tools as programs (`--bus-address`), and a guard that stops a spawned
//! daemon even when the test fails half-way.

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::lab::LabError;

/// A dbus-daemon on a socket in its own temporary directory, stopped (and
/// the directory removed) when dropped. Its policy lets anyone own any
/// name and send anything, like a session bus.
#[derive(Debug)]
pub struct Bus {
    dir: PathBuf,
    daemon: Child,
    address: String,
}

/// The default-deny policy of Debian's system bus (`system.conf`): nobody
/// owns names or calls methods unless a policy file of a service allows it.
const SYSTEM_POLICY: &str = r#"<policy context="default">
  <allow user="*"/>
  <deny own="*"/>
  <deny send_type="method_call"/>
  <allow send_type="signal"/>
  <allow send_requested_reply="true" send_type="method_return"/>
  <allow send_requested_reply="true" send_type="error"/>
  <allow receive_type="method_call"/>
  <allow receive_type="method_return"/>
  <allow receive_type="error"/>
  <allow receive_type="signal"/>
  <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
  <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
</policy>
<policy user="root">
  <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
</policy>"#;

impl Bus {
    /// Starts one; `tag` keeps the directories of concurrent tests apart.
    /// Its policy lets anyone own any name and send anything.
    pub fn start(tag: &str) -> Result<Self, LabError> {
        Self::start_with(
            tag,
            "session",
            r#"<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/></policy>"#,
        )
    }

    /// Starts one with the system bus's default-deny policy plus the policy
    /// files in `policy_dir` (the shipped ones, say); its socket is open to
    /// every local user, like the system bus's.
    pub fn start_system(tag: &str, policy_dir: &std::path::Path) -> Result<Self, LabError> {
        let policy = format!(
            "{SYSTEM_POLICY}\n<includedir>{}</includedir>",
            policy_dir.display()
        );
        Self::start_with(tag, "system", &policy)
    }

    fn start_with(tag: &str, kind: &str, policy: &str) -> Result<Self, LabError> {
        let dir = std::env::temp_dir().join(format!("stas-bus-{tag}-{}", std::process::id()));
        let io_err = |what: String| move |source| LabError::Io { what, source };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let socket = dir.join("bus");
        let conf = dir.join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>{kind}</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>
{policy}</busconfig>"#,
                socket.display()
            ),
        )
        .map_err(io_err(format!("writing {}", conf.display())))?;
        let mut daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .arg("--nofork")
            .spawn()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => LabError::MissingTool {
                    tool: "dbus-daemon".into(),
                    hint: "apt-get install dbus-daemon (scripts/test does)".into(),
                },
                _ => LabError::Io {
                    what: "starting dbus-daemon".into(),
                    source: e,
                },
            })?;
        let start = Instant::now();
        while !socket.exists() {
            let exited = daemon.try_wait().ok().flatten();
            if exited.is_some() || start.elapsed() > Duration::from_secs(10) {
                let _ = daemon.kill();
                let _ = daemon.wait();
                return Err(LabError::Command {
                    command: format!("dbus-daemon --config-file={}", conf.display()),
                    status: exited
                        .map_or_else(|| "no socket after 10 s".to_owned(), |s| s.to_string()),
                    output: String::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            dir,
            daemon,
            address: format!("unix:path={}", socket.display()),
        })
    }

    /// The address to give `--bus-address`.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A spawned program that is killed when dropped, so that a failing test
/// leaves no daemon behind.
#[derive(Debug)]
pub struct Running {
    child: Child,
}

impl Running {
    /// Spawns `cmd`.
    pub fn spawn(cmd: &mut Command) -> Result<Self, LabError> {
        let child = cmd.spawn().map_err(|source| LabError::Io {
            what: format!("starting {cmd:?}"),
            source,
        })?;
        Ok(Self { child })
    }

    /// Its standard output, if piped and not taken yet.
    pub fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Sends SIGTERM (the daemons' orderly stop) and waits up to `limit`
    /// for the exit; kills it if it does not exit in time.
    pub fn terminate(mut self, limit: Duration) -> Result<ExitStatus, LabError> {
        let child = &mut self.child;
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map_err(|source| LabError::Io {
                what: format!("kill -TERM {pid}"),
                source,
            })?;
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().map_err(|source| LabError::Io {
                what: format!("waiting for process {pid}"),
                source,
            })? {
                return Ok(status);
            }
            if !sent.success() || start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::Command {
                    command: format!("kill -TERM {pid}"),
                    status: format!("still running after {limit:?}; killed"),
                    output: String::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // After a wait that saw the exit, std sends no signal (no risk of
        // hitting a reused pid).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
