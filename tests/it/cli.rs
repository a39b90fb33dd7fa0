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
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("serve")
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
                if let Some(rest) = line.split("serving SCIM on http://127.0.0.1:").nth(1) {
                    let port: u16 = rest.split('/').next().unwrap().parse().unwrap();
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
    let token_file = dir.path().join("test.db.first-token");
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
