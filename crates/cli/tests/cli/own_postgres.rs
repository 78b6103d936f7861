//! PostgreSQL servers of a test's own: a fresh cluster in a temporary directory (run as the
//! `postgres` user when the test runs as root), and hot standbys streaming from one, stopped
//! and started without touching the machine's server.

use std::path::PathBuf;
use std::process::Command;

/// A PostgreSQL server of the test's own (a fresh cluster in a temporary directory, run as the
/// `postgres` user when the test runs as root), stopped and started under load without
/// touching the machine's.
pub(super) struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl OwnPostgres {
    pub(super) fn start() -> OwnPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries are installed under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .max()
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let pg = OwnPostgres::empty(bin);
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        pg.start_again();
        pg
    }

    /// A hot standby of `primary`, streaming from it (a base backup taken now), started.
    pub(super) fn standby_of(primary: &OwnPostgres) -> OwnPostgres {
        let standby = OwnPostgres::empty(primary.bin.clone());
        let port = primary.port.to_string();
        standby.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                &standby.data(),
                "--write-recovery-conf",
                "--wal-method=stream",
                "--no-sync",
            ],
        );
        standby.start_again();
        standby
    }

    /// A temporary directory for a cluster, owned by the user that runs it, and a free port.
    fn empty(bin: PathBuf) -> OwnPostgres {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if is_root() {
            assert!(
                Command::new("chown")
                    .args(["-R", "postgres"])
                    .arg(dir.path())
                    .status()
                    .unwrap()
                    .success()
            );
        }
        OwnPostgres { dir, bin, port }
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    pub(super) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs one of the server's programs as the user owning the cluster.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(args);
        command
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self.command(program, args).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub(super) fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
            ],
        );
    }

    /// Stops the server as a crash would: no clean shutdown, connections cut.
    pub(super) fn stop_immediate(&self) {
        self.run("pg_ctl", &["stop", "-m", "immediate", "-D", &self.data()]);
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl", &["stop", "-m", "immediate", "-D", &data])
            .output();
    }
}

pub(super) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
