//! The server under load: a fresh scimlite started in this process on a temp database, the
//! real binary started as a child process on a temp database, or a remote URL.
//! Cold start and resident memory are measured here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::cpu::{self, ServerCpu};

pub enum Mode {
    InProcess,
    Binary(PathBuf),
    Url {
        /// One SCIM base URL, or several separated by commas: instances of one service,
        /// each worker connection going to one of them in turn.
        url: String,
        token: String,
        /// The servers' process ids, when they run on this machine: their CPU time is
        /// measured.
        server_pids: Vec<u32>,
    },
}

/// Server settings the generator passes to a server it starts.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub pbkdf2_rounds: u32,
    pub synchronous: String,
    /// A push receiver (`[[events.push]]`) for the tenant the load goes to.
    pub push: Option<PushTarget>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            pbkdf2_rounds: 1000,
            synchronous: "full".into(),
            push: None,
        }
    }
}

/// Where a server the generator starts pushes its provisioning events.
#[derive(Debug, Clone)]
pub struct PushTarget {
    pub url: String,
    /// `[events] push_max_backoff_secs`; the server's default when `None`.
    pub max_backoff_secs: Option<u64>,
}

enum Kind {
    InProcess {
        // Boxed: the handle is far larger than the other variants.
        handle: Option<Box<scimlite::ServerHandle>>,
        config: Box<scimlite::config::Config>,
        _dir: tempfile::TempDir,
    },
    Binary {
        child: Child,
        program: PathBuf,
        config_path: PathBuf,
        port: u16,
        _dir: tempfile::TempDir,
    },
    Remote {
        server_pids: Vec<u32>,
    },
}

pub struct Target {
    /// `http://HOST:PORT/scim/v2`
    pub base: String,
    pub token: String,
    /// Time from start to the first answered `GET /ServiceProviderConfig`, on an empty database.
    pub cold_start_ms: Option<f64>,
    /// Request worker threads and connection threads of the server (for the hello-world
    /// ceiling); for a remote server, scimlite's defaults.
    pub workers: usize,
    pub http_threads: usize,
    kind: Kind,
}

/// How long a started server may take to answer before the run gives up.
const READY_LIMIT: Duration = Duration::from_secs(30);

fn write_config(dir: &Path, listen: &str, s: &ServerSettings) -> Result<PathBuf, String> {
    let path = dir.join("scim.toml");
    let mut text = format!(
        "listen = \"{listen}\"\ndatabase = \"load.db\"\npbkdf2_rounds = {}\nsynchronous = \"{}\"\nlog_level = \"warn\"\n",
        s.pbkdf2_rounds, s.synchronous
    );
    if let Some(push) = &s.push {
        text.push_str("\n[events]\n");
        if let Some(secs) = push.max_backoff_secs {
            text.push_str(&format!("push_max_backoff_secs = {secs}\n"));
        }
        text.push_str(&format!(
            "\n[[events.push]]\ntenant = \"default\"\nurl = \"{}\"\n",
            push.url
        ));
    }
    std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// scimlite's own defaults for worker and connection threads.
pub fn default_threads() -> Result<(usize, usize), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let path = dir.path().join("scim.toml");
    std::fs::write(&path, "").map_err(|e| format!("writing {}: {e}", path.display()))?;
    let c = scimlite::config::Config::from_file(&path).map_err(|e| e.to_string())?;
    Ok((c.workers, c.http_threads))
}

/// Polls `GET /ServiceProviderConfig` until it answers 200; the token may appear late
/// (the binary writes it to a file), so it is asked for on each try.
fn wait_ready(
    base: &str,
    mut token: impl FnMut() -> Option<String>,
    started: Instant,
) -> Result<f64, String> {
    let mut last = String::from("no answer");
    while started.elapsed() < READY_LIMIT {
        if let Some(t) = token() {
            match Client::new(base, Some(&t)).send("GET", "/ServiceProviderConfig", None) {
                Ok(r) if r.status == 200 => return Ok(started.elapsed().as_secs_f64() * 1000.0),
                Ok(r) => last = format!("status {}", r.status),
                Err(e) => last = e,
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Err(format!(
        "the server did not answer GET /ServiceProviderConfig within {READY_LIMIT:?}: {last}"
    ))
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn spawn_binary(program: &Path, config_path: &Path, dir: &Path) -> Result<Child, String> {
    let log = std::fs::File::create(dir.join("server.log"))
        .map_err(|e| format!("creating the server log: {e}"))?;
    Command::new(program)
        .arg("--config")
        .arg(config_path)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("starting {}: {e}", program.display()))
}

impl Target {
    pub fn start(mode: Mode, s: &ServerSettings) -> Result<Target, String> {
        match mode {
            Mode::Url {
                url,
                token,
                server_pids,
            } => {
                for &pid in &server_pids {
                    if cpu::process_seconds(pid).is_none() {
                        return Err(format!(
                            "--server-pid {pid}: cannot read the CPU time of that process (/proc/{pid}/stat)"
                        ));
                    }
                }
                let (workers, http_threads) = default_threads()?;
                Ok(Target {
                    base: url
                        .split(',')
                        .map(|u| u.trim().trim_end_matches('/'))
                        .collect::<Vec<_>>()
                        .join(","),
                    token,
                    cold_start_ms: None,
                    workers,
                    http_threads,
                    kind: Kind::Remote { server_pids },
                })
            }
            Mode::InProcess => {
                let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
                let path = write_config(dir.path(), "127.0.0.1:0", s)?;
                let config =
                    scimlite::config::Config::from_file(&path).map_err(|e| e.to_string())?;
                let started = Instant::now();
                let handle = scimlite::start(&config).map_err(|e| format!("scimlite: {e}"))?;
                let token = handle
                    .first_token
                    .as_ref()
                    .map(|t| t.token.clone())
                    .ok_or("a fresh database gave no first-run token")?;
                let base = format!("http://{}/scim/v2", handle.local_addr());
                let cold = wait_ready(&base, || Some(token.clone()), started)?;
                Ok(Target {
                    base,
                    token,
                    cold_start_ms: Some(cold),
                    workers: config.workers,
                    http_threads: config.http_threads,
                    kind: Kind::InProcess {
                        handle: Some(Box::new(handle)),
                        config: Box::new(config),
                        _dir: dir,
                    },
                })
            }
            Mode::Binary(program) => {
                let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
                let port = free_port()?;
                let config_path = write_config(dir.path(), &format!("127.0.0.1:{port}"), s)?;
                let config =
                    scimlite::config::Config::from_file(&config_path).map_err(|e| e.to_string())?;
                let token_file = scimlite::cli::first_token_file(&config);
                let base = format!("http://127.0.0.1:{port}/scim/v2");
                let started = Instant::now();
                let child = spawn_binary(&program, &config_path, dir.path())?;
                let mut target = Target {
                    base,
                    token: String::new(),
                    cold_start_ms: None,
                    workers: config.workers,
                    http_threads: config.http_threads,
                    kind: Kind::Binary {
                        child,
                        program,
                        config_path,
                        port,
                        _dir: dir,
                    },
                };
                let read_token = || {
                    std::fs::read_to_string(&token_file)
                        .ok()
                        .map(|t| t.trim().to_string())
                        .filter(|t| !t.is_empty())
                };
                let cold = wait_ready(&target.base, read_token, started)?;
                target.token = read_token().ok_or("the binary wrote no first-run token")?;
                target.cold_start_ms = Some(cold);
                Ok(target)
            }
        }
    }

    pub fn mode_name(&self) -> &'static str {
        match self.kind {
            Kind::InProcess { .. } => "in-process",
            Kind::Binary { .. } => "binary",
            Kind::Remote { .. } => "url",
        }
    }

    /// Stops the server and starts it again on the same (loaded) database; returns the time
    /// from start to the first answered `GET /ServiceProviderConfig`. `None` for a remote server.
    pub fn restart(&mut self) -> Result<Option<f64>, String> {
        match &mut self.kind {
            Kind::Remote { .. } => Ok(None),
            Kind::InProcess { handle, config, .. } => {
                if let Some(h) = handle.take() {
                    h.shutdown();
                }
                let started = Instant::now();
                let h = scimlite::start(config).map_err(|e| format!("scimlite restart: {e}"))?;
                self.base = format!("http://{}/scim/v2", h.local_addr());
                *handle = Some(Box::new(h));
                let token = self.token.clone();
                wait_ready(&self.base, || Some(token.clone()), started).map(Some)
            }
            Kind::Binary {
                child,
                program,
                config_path,
                port,
                _dir,
            } => {
                terminate(child)?;
                // The port was released with the process; wait until it refuses connections.
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline
                    && std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100))
                        .is_ok()
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let started = Instant::now();
                *child = spawn_binary(program, config_path, _dir.path())?;
                let token = self.token.clone();
                wait_ready(&self.base, || Some(token.clone()), started).map(Some)
            }
        }
    }

    /// Where the server's CPU time is read (the child's process id changes on a restart).
    pub fn server_cpu(&self) -> ServerCpu {
        match &self.kind {
            Kind::InProcess { .. } => ServerCpu::InProcess,
            Kind::Binary { child, .. } => ServerCpu::Process(child.id()),
            Kind::Remote { server_pids } => match server_pids.as_slice() {
                [] => ServerCpu::Unmeasured,
                [pid] => ServerCpu::Process(*pid),
                pids => ServerCpu::Processes(pids.to_vec()),
            },
        }
    }

    /// Resident memory of the server in MiB (current, peak) and what it covers.
    pub fn memory(&self) -> Option<(f64, f64, &'static str)> {
        let (path, what) = match &self.kind {
            Kind::Remote { .. } => return None,
            Kind::InProcess { .. } => (
                "/proc/self/status".to_string(),
                "server and load generator in one process",
            ),
            Kind::Binary { child, .. } => (
                format!("/proc/{}/status", child.id()),
                "server process alone",
            ),
        };
        let text = std::fs::read_to_string(path).ok()?;
        let field = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
        };
        Some((field("VmRSS:")?, field("VmHWM:")?, what))
    }

    pub fn stop(mut self) {
        match &mut self.kind {
            Kind::Remote { .. } => {}
            Kind::InProcess { handle, .. } => {
                if let Some(h) = handle.take() {
                    h.shutdown();
                }
            }
            Kind::Binary { child, .. } => {
                if let Err(e) = terminate(child) {
                    eprintln!("stopping the server: {e}");
                }
            }
        }
    }
}

/// SIGTERM (graceful, through the `kill` command: this crate has no libc binding), then
/// SIGKILL if the process is still there after 10 s.
fn terminate(child: &mut Child) -> Result<(), String> {
    if let Ok(Some(_)) = child.try_wait() {
        return Ok(());
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child
        .kill()
        .map_err(|e| format!("killing the server: {e}"))?;
    child
        .wait()
        .map(|_| ())
        .map_err(|e| format!("waiting for the server: {e}"))
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Kind::Binary { child, .. } = &mut self.kind {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
