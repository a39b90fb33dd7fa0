//! The real binary: first-run token hand-over, token create/list/revoke, check-config,
//! SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{agent, send, write_config};

const BIN: &str = env!("CARGO_BIN_EXE_scimlite");

fn scimlite(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

pub struct Running {
    pub child: Child,
    pub port: u16,
}

impl Running {
    /// Starts `serve` with stdout piped (not a terminal) and waits for the listen line.
    pub fn start(dir: &Path, config: &Path) -> Running {
        let mut command = Command::new(BIN);
        command.arg("--config").arg(config).arg("serve");
        Self::spawn(dir, command)
    }

    /// Starts `command` (a `serve`, perhaps wrapped) the way [`Running::start`] does.
    fn spawn(dir: &Path, mut command: Command) -> Running {
        let mut child = command
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // `http://127.0.0.1:PORT/scim/v2`, or another host's address for a host name.
                if let Some(rest) = line.split("serving SCIM on http://").nth(1) {
                    let authority = rest.split('/').next().unwrap();
                    let port: u16 = authority.rsplit(':').next().unwrap().parse().unwrap();
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server did not start");
        Running { child, port }
    }

    fn status(&self, token: &str) -> u16 {
        self.status_at("/scim/v2/Users", token)
    }

    fn status_at(&self, path: &str, token: &str) -> u16 {
        self.request("GET", path, token, None).status
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> crate::common::Reply {
        let auth = format!("Bearer {token}");
        send(
            &agent(None),
            method,
            &format!("http://127.0.0.1:{}{path}", self.port),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/scim+json"),
            ],
            body.map(|b| b.to_string().into_bytes()),
        )
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("scimlite did not exit within 10 s of SIGTERM");
    }
}

#[test]
fn first_run_token_tokens_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let server = Running::start(dir.path(), &config);
    // Not a terminal: the first token goes to a 0600 file beside the database, never to stdout
    // or the log.
    let token_file = crate::common::first_token_file(dir.path());
    let first = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(first.starts_with("scim_"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(server.status(&first), 200);

    // token create: the token is the last line of stdout; everything else on stderr.
    let out = scimlite(&config, &["token", "create", "--name", "okta"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let created = stdout.lines().last().unwrap().to_string();
    assert!(created.starts_with("scim_"));
    assert_eq!(server.status(&created), 200);

    let list = scimlite(&config, &["token", "list"]);
    let listing = String::from_utf8(list.stdout).unwrap();
    assert!(
        listing.contains("okta") && listing.contains("first-run"),
        "{listing}"
    );
    assert!(
        !listing.contains(&created) && !listing.contains(&first),
        "secrets must never be listed"
    );
    let okta_id = created.split('_').nth(1).unwrap();

    let revoke = scimlite(&config, &["token", "revoke", okta_id]);
    assert!(revoke.status.success());
    assert!(!scimlite(&config, &["token", "revoke", okta_id])
        .status
        .success());
    // The running server refuses it from the next request on.
    assert_eq!(server.status(&created), 401);
    assert_eq!(server.status(&first), 200);

    let status = server.terminate();
    assert!(status.success(), "SIGTERM must exit 0, got {status:?}");

    // A second run creates no new token.
    std::fs::remove_file(&token_file).unwrap();
    let again = Running::start(dir.path(), &config);
    assert!(!token_file.exists());
    assert!(again.terminate().success());
}

/// The database holds token and password hashes: a real server start creates it, its WAL and
/// its shared-memory file readable by their owner only, under the usual umask 022 (which on
/// its own would leave them world-readable).
#[cfg(unix)]
#[test]
fn a_new_database_and_its_wal_and_shm_are_owner_only() {
    if crate::common::sqlite_only("the modes of the database file and its WAL") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("umask 022 && exec \"$0\" --config \"$1\" serve")
        .arg(BIN)
        .arg(&config);
    let server = Running::spawn(dir.path(), command);
    let token = std::fs::read_to_string(crate::common::first_token_file(dir.path())).unwrap();
    assert_eq!(server.status(token.trim()), 200);
    for name in [
        "test.db",
        "test.db-wal",
        "test.db-shm",
        "test.db.first-token",
    ] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(format!("{:o}", mode & 0o777), "600", "{name}");
    }
    assert!(server.terminate().success());
}

#[test]
fn check_config_names_the_offending_key_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(dir.path(), "");
    let out = scimlite(&good, &["check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cases = [
        ("listn = \"127.0.0.1:1\"\n", "listn"),
        ("log_level = \"chatty\"\n", "log_level"),
        (
            "[tls]\ncert = \"missing-cert.pem\"\nkey = \"missing-key.pem\"\n",
            "missing-cert.pem",
        ),
    ];
    for (extra, needle) in cases {
        let cfg = write_config(dir.path(), extra);
        let out = scimlite(&cfg, &["check-config"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra} must fail");
        assert!(err.contains(needle), "{extra}: {err}");
    }
    // Plain HTTP on a public address is refused unless a TLS proxy is declared.
    let public = dir.path().join("public.toml");
    std::fs::write(&public, "listen = \"0.0.0.0:0\"\n").unwrap();
    let out = scimlite(&public, &["serve"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`listen`"));
    std::fs::write(&public, "listen = \"0.0.0.0:0\"\nbehind_tls_proxy = true\n").unwrap();
    assert!(scimlite(&public, &["check-config"]).status.success());
    // An explicitly named config file that does not exist is an error, not silent defaults.
    let out = scimlite(&dir.path().join("nope.toml"), &["check-config"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.toml"));
}

/// `check-config` says what a value should be in an admin's words, never serde's type names,
/// and still names the file and the line.
#[test]
fn check_config_speaks_the_admins_language() {
    let dir = tempfile::tempdir().unwrap();
    // write_config writes four lines first: the extra text starts on line 5.
    for (extra, words, line) in [
        ("max_connections = \"64\"\n", "expected a whole number", 5),
        (
            "request_timeout_secs = \"30\"\n",
            "expected a whole number",
            5,
        ),
        ("audit_retention_days = 1.5\n", "expected a whole number", 5),
        ("max_body_bytes = -1\n", "expected a whole number", 5),
        ("behind_tls_proxy = \"yes\"\n", "expected true or false", 5),
        ("log_level = 3\n", "expected text in double quotes", 5),
        ("tls = \"cert.pem\"\n", "expected a table", 5),
        (
            "[tls]\ncert = \"c.pem\"\nkey = [\"k.pem\"]\n",
            "expected text in double quotes",
            7,
        ),
    ] {
        let cfg = write_config(dir.path(), extra);
        let out = scimlite(&cfg, &["check-config"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{extra} must fail");
        assert!(err.contains(words), "{extra}: {err}");
        assert!(
            err.contains("scim.toml") && err.contains(&format!("line {line}")),
            "{extra}: {err}"
        );
        for jargon in ["u64", "u32", "usize", "struct Raw", "a boolean", "a string"] {
            assert!(!err.contains(jargon), "{extra}: {jargon} in {err}");
        }
    }
}

/// `listen = "localhost:…"`: check-config takes it and lists the addresses, and the server
/// listens on them.
#[test]
fn listen_takes_a_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scim.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"localhost:8080\"\ndatabase = \"{}\"\npbkdf2_rounds = 1000\n",
            crate::common::database_setting(dir.path())
        ),
    )
    .unwrap();
    let out = scimlite(&config, &["check-config"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("ok (listen ") && err.contains(":8080"),
        "{err}"
    );

    std::fs::write(
        &config,
        format!(
            "listen = \"localhost:0\"\ndatabase = \"{}\"\npbkdf2_rounds = 1000\n",
            crate::common::database_setting(dir.path())
        ),
    )
    .unwrap();
    let server = Running::start(dir.path(), &config);
    let token = std::fs::read_to_string(crate::common::first_token_file(dir.path())).unwrap();
    assert_eq!(server.status(token.trim()), 200);
    assert!(server.terminate().success());
}

#[test]
fn config_comes_from_scimlite_config_env_and_defaults_without_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "log_level = \"bogus\"\n");
    let out = Command::new(BIN)
        .arg("check-config")
        .env("SCIMLITE_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("log_level"));
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .env_remove("SCIMLITE_CONFIG")
        .current_dir(empty.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("embedded defaults") && err.contains("127.0.0.1:8080"),
        "{err}"
    );
}

/// Under systemd `Type=notify`: READY=1 once the listener answers, STOPPING=1 on SIGTERM.
#[test]
fn tells_systemd_when_ready_and_when_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .current_dir(dir.path())
        .env("NOTIFY_SOCKET", &socket_path)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("READY notification");
    let ready = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(ready.contains("READY=1"), "{ready}");
    // By the time systemd hears READY, the server answers.
    let port: u16 = ready
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|p| p.trim().parse().ok())
        .expect("status names the address");
    let health = send(
        &agent(None),
        "GET",
        &format!("http://127.0.0.1:{port}/healthz"),
        &[],
        None,
    );
    assert_eq!(health.status, 200);
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let n = socket.recv(&mut buf).expect("STOPPING notification");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    assert!(child.wait().unwrap().success());
}

/// `token list` shows every time at one precision (UTC, whole seconds) — created, last used
/// and expires alike — and says that "last used" is recorded at most once a minute.
#[test]
fn token_list_shows_times_at_one_precision_and_how_last_used_moves() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let server = Running::start(dir.path(), &config);
    let first = std::fs::read_to_string(crate::common::first_token_file(dir.path())).unwrap();
    assert_eq!(server.status(first.trim()), 200);
    for expires in ["90d", "2030-01-31T00:00:00.250+01:00"] {
        let out = scimlite(&config, &["token", "create", "--expires", expires]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = scimlite(&config, &["token", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listing = String::from_utf8(out.stdout.clone()).unwrap();
    let second = |t: &str| {
        t.len() == 20
            && t.ends_with('Z')
            && t.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                10 => b == b'T',
                13 | 16 => b == b':',
                19 => b == b'Z',
                _ => b.is_ascii_digit(),
            })
    };
    let mut times = 0;
    for line in listing.lines().skip(1) {
        // id, name, created, last used, tenant, scope, expires
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 7, "{line}");
        for t in [fields[2], fields[3], fields[6]] {
            assert!(t == "never" || second(t), "{t} in {line}");
            times += usize::from(t != "never");
        }
    }
    // Three created, the first token's last use, two expiries.
    assert_eq!(times, 6, "{listing}");
    assert!(listing.contains("2030-01-30T23:00:00Z"), "{listing}");
    assert!(
        stderr(&out).contains("\"last used\" is recorded at most once a minute"),
        "{}",
        stderr(&out)
    );
    assert!(server.terminate().success());
}

fn last_line(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the token goes to stdout: {stdout}"
    );
    stdout.lines().last().unwrap().to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// `tenant create/list/delete`, `token create --tenant --scope --expires`, `token rotate`
/// on a running server: the old token is refused on the next request, within the second.
#[test]
fn tenants_and_token_rotation_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let server = Running::start(dir.path(), &config);

    for bad in [
        "Users",
        "users",
        "ACME",
        "a_b",
        "",
        &"x".repeat(64),
        ".search",
        "me",
    ] {
        let out = scimlite(&config, &["tenant", "create", bad]);
        assert!(!out.status.success(), "{bad:?} must be refused");
        assert!(stderr(&out).contains("tenant"), "{bad:?}: {}", stderr(&out));
    }
    assert!(scimlite(&config, &["tenant", "create", "acme"])
        .status
        .success());
    let again = scimlite(&config, &["tenant", "create", "acme"]);
    assert!(!again.status.success() && stderr(&again).contains("already exists"));
    assert!(scimlite(&config, &["tenant", "create", "globex-2"])
        .status
        .success());
    let nope = scimlite(&config, &["token", "create", "--tenant", "nope"]);
    assert!(!nope.status.success());
    assert!(
        stderr(&nope).contains("tenant create nope"),
        "{}",
        stderr(&nope)
    );

    let acme = last_line(&scimlite(
        &config,
        &["token", "create", "--tenant", "acme", "--name", "okta"],
    ));
    let reader = last_line(&scimlite(
        &config,
        &[
            "token",
            "create",
            "--tenant",
            "acme",
            "--name",
            "reader",
            "--scope",
            "read-only",
            "--expires",
            "90d",
        ],
    ));
    let globex = last_line(&scimlite(
        &config,
        &["token", "create", "--tenant", "globex-2", "--name", "entra"],
    ));
    let bad_expiry = scimlite(&config, &["token", "create", "--expires", "yesterday"]);
    assert!(!bad_expiry.status.success() && stderr(&bad_expiry).contains("--expires"));

    assert_eq!(server.status_at("/scim/v2/acme/Users", &acme), 200);
    assert_eq!(server.status_at("/scim/v2/Users", &acme), 200);
    assert_eq!(server.status_at("/scim/v2/globex-2/Users", &acme), 404);
    assert_eq!(server.status_at("/scim/v2/globex-2/Users", &globex), 200);
    assert_eq!(server.status_at("/scim/v2/acme/Users", &reader), 200);
    let write = server.request(
        "POST",
        "/scim/v2/acme/Users",
        &reader,
        Some(&serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x"})),
    );
    assert_eq!(write.status, 403, "{}", write.text);
    let user = serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice"});
    assert_eq!(
        server
            .request("POST", "/scim/v2/acme/Users", &acme, Some(&user))
            .status,
        201
    );

    let list = scimlite(&config, &["token", "list"]);
    let listing = String::from_utf8(list.stdout).unwrap();
    let header = listing.lines().next().unwrap();
    assert!(
        header.starts_with("id")
            && header.contains("tenant")
            && header.contains("scope")
            && header.contains("expires"),
        "{header}"
    );
    let reader_line = listing.lines().find(|l| l.contains("reader")).unwrap();
    assert!(
        reader_line.contains("acme")
            && reader_line.contains("read-only")
            && !reader_line.ends_with("never"),
        "{reader_line}"
    );
    let okta_line = listing.lines().find(|l| l.contains("okta")).unwrap();
    assert!(
        okta_line.contains("read-write") && okta_line.ends_with("never"),
        "{okta_line}"
    );

    let tenants = String::from_utf8(scimlite(&config, &["tenant", "list"]).stdout).unwrap();
    let acme_line = tenants.lines().find(|l| l.starts_with("acme ")).unwrap();
    let counts: Vec<&str> = acme_line.split_whitespace().skip(2).collect();
    assert_eq!(counts, ["1", "0", "2"], "{tenants}");
    assert!(tenants.lines().any(|l| l.starts_with("default ")));

    // Rotation: the new token works and both old acme tokens stop at once, on the running
    // server; other tenants' tokens are untouched.
    assert_eq!(server.status_at("/scim/v2/acme/Users", &acme), 200);
    let rotate = scimlite(
        &config,
        &["token", "rotate", "--tenant", "acme", "--name", "okta"],
    );
    let rotated = last_line(&rotate);
    assert!(stderr(&rotate).contains("revoked"), "{}", stderr(&rotate));
    let started = std::time::Instant::now();
    assert_eq!(server.status_at("/scim/v2/acme/Users", &acme), 401);
    assert_eq!(server.status_at("/scim/v2/acme/Users", &reader), 401);
    assert_eq!(server.status_at("/scim/v2/acme/Users", &rotated), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(server.status_at("/scim/v2/Users", &globex), 200);

    // Deletion: refused while the tenant holds data, then purged with its tokens.
    let refused = scimlite(&config, &["tenant", "delete", "acme"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--purge"), "{}", stderr(&refused));
    assert_eq!(server.status_at("/scim/v2/acme/Users", &rotated), 200);
    let purged = scimlite(&config, &["tenant", "delete", "acme", "--purge"]);
    assert!(purged.status.success(), "{}", stderr(&purged));
    assert_eq!(server.status_at("/scim/v2/acme/Users", &rotated), 401);
    assert!(!scimlite(&config, &["tenant", "delete", "acme"])
        .status
        .success());
    assert!(!scimlite(&config, &["tenant", "delete", "default"])
        .status
        .success());
    // An empty tenant needs no --purge.
    assert!(scimlite(&config, &["tenant", "delete", "globex-2"])
        .status
        .success());
    assert_eq!(server.status_at("/scim/v2/Users", &globex), 401);

    // Every one of those admin changes is in the audit log, the purge with its counts.
    let audit = scimlite(&config, &["audit", "--tenant", "acme"]);
    assert!(audit.status.success(), "{}", stderr(&audit));
    let log = String::from_utf8_lossy(&audit.stdout);
    for expected in [
        "tenant-create Tenant acme",
        "token-create Token",
        "token-rotate Token",
        "revoked: ",
        "tenant-delete Tenant acme",
        "deleted 1 users, 0 groups,",
    ] {
        assert!(log.contains(expected), "{expected} not in\n{log}");
    }

    assert!(server.terminate().success());
}

/// The README a newcomer reads: where the binary is and how to install it before the first
/// `scimlite …` command, every command and option clap knows in "Command line" (selftest
/// included) with `--config` optional, and the Debian section reachable from its references.
#[test]
fn the_readme_says_where_the_binary_is_and_lists_every_command() {
    use clap::CommandFactory;
    let readme = include_str!("../../README.md");
    let section = |title: &str| {
        let start = readme
            .find(&format!("\n## {title}\n"))
            .unwrap_or_else(|| panic!("no section {title}"));
        let rest = &readme[start + 1..];
        let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
        (start, &rest[..end])
    };
    let (install_at, install) = section("Installing");
    for needed in [
        "target/release/scimlite",
        "cargo install --path .",
        "(#installing-the-debian-package)",
    ] {
        assert!(install.contains(needed), "Installing lacks {needed}");
    }
    let first_command = readme.find("\nscimlite ").expect("a scimlite command line");
    assert!(
        install_at < first_command,
        "install before the first command"
    );
    assert!(readme.contains("\n## Installing the Debian package\n"));

    let (_, commands) = section("Command line");
    let usage: Vec<&str> = commands
        .lines()
        .filter(|l| l.starts_with("scimlite "))
        .collect();
    for line in &usage {
        assert!(
            line.starts_with("scimlite [--config FILE] ")
                || line.starts_with("scimlite selftest ")
                || line.starts_with("scimlite --help"),
            "--config is optional: {line}"
        );
    }
    // Every leaf command clap knows, with every long option, is on a usage line.
    fn leaves(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        let subs: Vec<&clap::Command> = cmd
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .collect();
        for s in &subs {
            leaves(s, format!("{path} {}", s.get_name()), out);
        }
        if subs.is_empty() {
            out.push((path, cmd.clone()));
        }
    }
    let mut all = Vec::new();
    leaves(&scimlite::cli::Cli::command(), String::new(), &mut all);
    assert!(all.iter().any(|(p, _)| p == " selftest"));
    for (path, cmd) in all {
        let line = usage
            .iter()
            .find(|l| {
                let plain = l
                    .replace("scimlite [--config FILE]", "scimlite")
                    .replace("[serve]", "serve");
                format!("{plain} ").starts_with(&format!("scimlite{path} "))
            })
            .unwrap_or_else(|| panic!("\"scimlite{path}\" is not in Command line"));
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                if !["config", "help", "version"].contains(&long) && !arg.is_hide_set() {
                    assert!(
                        line.contains(&format!("--{long}")),
                        "{path}: --{long} in {line}"
                    );
                }
            }
        }
    }
    // selftest's cleanup as it is: Okta's users stay, deactivated.
    let (_, connecting) = section("Connecting Okta and Entra ID");
    assert!(
        connecting.contains("deactivated") && connecting.contains("Pulumi.Okta.<run>@example.com"),
        "selftest's cleanup"
    );
}

/// What the first run leaves in a checkout never ends up in a commit: the database, its WAL
/// files and the first-token file (written when stdout is not a terminal).
#[test]
fn gitignore_covers_what_a_first_run_writes() {
    let ignored: Vec<&str> = include_str!("../../.gitignore").lines().collect();
    for pattern in ["*.db", "*.db-wal", "*.db-shm", "*.first-token"] {
        assert!(ignored.contains(&pattern), "{pattern} not in .gitignore");
    }
}

/// The "Custom attributes" step of each IdP guide: its `[[extension]]` declaration loads as
/// written and serves the URN-keyed value, and the 400 it quotes for an undeclared URN is
/// the one the server sends.
#[test]
fn the_guides_custom_attribute_steps_declare_what_loads_and_quote_the_real_400() {
    use crate::common::TestServer;
    use serde_json::json;
    let blocks = |doc: &str, lang: &str| -> Vec<String> {
        let start = doc
            .find("\n## 4. Custom attributes\n")
            .expect("the section");
        let section = &doc[start
            ..doc[start + 1..]
                .find("\n## ")
                .map_or(doc.len(), |e| e + 1 + start)];
        let fence = format!("```{lang}\n");
        let mut out = Vec::new();
        let mut rest = section;
        while let Some(i) = rest.find(&fence) {
            let body = &rest[i + fence.len()..];
            let end = body.find("```").expect("a closed block");
            // Blocks inside a list item are indented.
            let text: Vec<&str> = body[..end].lines().map(str::trim_start).collect();
            out.push(text.join("\n"));
            rest = &body[end + 3..];
        }
        out
    };
    for (doc, declared_user, undeclared) in [
        (
            include_str!("../../docs/entra.md"),
            "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User",
            "urn:ietf:params:scim:schemas:extension:Fabrikam:2.0:User",
        ),
        (
            include_str!("../../docs/okta.md"),
            "urn:ietf:params:scim:schemas:extension:acme:2.0:User",
            "urn:ietf:params:scim:schemas:extension:acme:2.0:User",
        ),
    ] {
        let toml = blocks(doc, "toml");
        assert_eq!(toml.len(), 1, "{toml:?}");
        let quoted = blocks(doc, "text");
        assert_eq!(quoted.len(), 1, "{quoted:?}");
        let detail = quoted[0].trim();
        let attr = detail
            .split_once("(attribute \"")
            .and_then(|(_, r)| r.split_once('"'))
            .map(|(a, _)| a)
            .expect("the quoted detail names an attribute");

        // Declared as the guide says: the value is served under the URN key, a boolean
        // sent as a string comes back a boolean.
        let s = TestServer::with_config(&toml[0]);
        let created = s.post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "guide",
                declared_user: {"badgeNumber": "701984", "isContractor": "True"}}),
        );
        assert_eq!(created.status, 201, "{}", created.text);
        let user = created.json();
        assert_eq!(user[declared_user]["badgeNumber"], "701984", "{user}");
        assert_eq!(user[declared_user]["isContractor"], true, "{user}");

        // Undeclared: the server's detail is the guide's quote. Okta's example is the same
        // URN on a server where it is not declared yet.
        let bare = TestServer::start();
        let server = if undeclared == declared_user {
            &bare
        } else {
            &s
        };
        let refused = server.post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "undeclared", undeclared: {attr: "x"}}),
        );
        assert_eq!(refused.status, 400, "{}", refused.text);
        assert_eq!(refused.json()["detail"], detail);
        assert_eq!(
            server.total("Users"),
            if undeclared == declared_user { 0 } else { 1 }
        );
    }
}

/// `database = "postgres://…"`: the password from PGPASSWORD or `database_password_file`,
/// TLS as `sslmode` asks (verify-full against the cluster's own CA, refused against another
/// CA), `backup` pointing at pg_dump, and check-config naming a bad URL. Needs the suite's
/// PostgreSQL (and, for TLS, the CA `.ci/postgres` made, in SCIMLITE_TEST_POSTGRES_CA).
#[test]
fn postgres_passwords_tls_backup_and_check_config() {
    if crate::common::postgres().is_none() {
        eprintln!("note: needs a PostgreSQL server (SCIMLITE_TEST_POSTGRES); skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = crate::common::database_setting(dir.path());
    // postgres://user:password@host… → postgres://user@host… and the password.
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest.split_once('@').unwrap();
    let (user, password) = userinfo.split_once(':').unwrap();
    let bare = format!("{scheme}://{user}@{host}");
    let config = dir.path().join("pg.toml");
    let write = |database: &str, extra: &str| {
        std::fs::write(
            &config,
            format!("database = \"{database}\"\npbkdf2_rounds = 1000\n{extra}"),
        )
        .unwrap();
    };
    let check = |env: &[(&str, &str)]| {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(&config)
            .arg("check-config")
            .env_remove("RUST_LOG")
            .env_remove("PGPASSWORD");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };

    // No password anywhere: the server refuses, and the message names the database.
    write(&bare, "");
    let out = check(&[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&bare), "{}", stderr(&out));
    // PGPASSWORD.
    let out = check(&[("PGPASSWORD", password)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("database {bare}")));
    // database_password_file, its first line; it wins over PGPASSWORD.
    let pw_file = dir.path().join("db-password");
    std::fs::write(&pw_file, format!("{password}\n")).unwrap();
    write(
        &bare,
        &format!("database_password_file = \"{}\"\n", pw_file.display()),
    );
    let out = check(&[("PGPASSWORD", "wrong")]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A password in the URL is never printed.
    write(&url, "");
    let out = check(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains(password), "{}", stderr(&out));
    assert!(stderr(&out).contains(":***@"), "{}", stderr(&out));

    // Backups of PostgreSQL are pg_dump's; nothing is written.
    let copy = dir.path().join("copy.db");
    let out = scimlite(&config, &["backup", copy.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pg_dump"), "{}", stderr(&out));
    assert!(!copy.exists());

    // Mistakes in the URL, named by check-config with the key.
    for (database, needle) in [
        (format!("{bare}?sslmode=sometimes"), "sslmode"),
        ("postgres://127.0.0.1/x".to_string(), "names no user"),
        (format!("{bare}?sslcert=/c.pem"), "sslcert"),
    ] {
        write(&database, "");
        let out = check(&[]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{database}");
        assert!(
            err.contains("key `database`") && err.contains(needle),
            "{err}"
        );
    }

    // TLS: verify-full against the cluster's CA connects; another CA is refused.
    let Ok(ca) = std::env::var("SCIMLITE_TEST_POSTGRES_CA") else {
        eprintln!("note: SCIMLITE_TEST_POSTGRES_CA is not set; TLS to PostgreSQL not checked");
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    for mode in ["require", "verify-ca", "verify-full"] {
        write(&format!("{url}{sep}sslmode={mode}&sslrootcert={ca}"), "");
        let out = check(&[]);
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
    }
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    write(
        &format!(
            "{url}{sep}sslmode=verify-full&sslrootcert={}",
            other_ca.display()
        ),
        "",
    );
    let out = check(&[]);
    assert!(
        !out.status.success(),
        "a certificate from another CA was taken"
    );
}
