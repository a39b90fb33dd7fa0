//! The command line. This surface is a public contract (admins' scripts depend on it):
//! extend it, never break it.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod events;

use crate::config::Config;
use crate::store::{Actor, AuditEntry, AuditQuery, StoreError, TokenScope, DEFAULT_TENANT};

#[derive(Parser, Debug)]
#[command(
    name = "scimlite",
    version,
    about = "A SCIM 2.0 service provider in one binary with one SQLite file"
)]
pub struct Cli {
    /// Configuration file [default: scim.toml in the working directory, or embedded defaults]
    #[arg(long, global = true, env = "SCIMLITE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve SCIM over HTTP(S) (the default)
    Serve,
    /// Manage bearer tokens
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Manage tenants: separate directories, each under /scim/v2/{tenant} with its own tokens
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
    },
    /// Validate the configuration file, the database path and the TLS files
    CheckConfig,
    /// Replay Okta's and Entra ID's provisioning flows against a SCIM endpoint and report
    /// each check; non-zero exit on any failure. Cleans up what it creates (Okta-style users
    /// are only deactivated, as Okta does). The custom-attribute flow runs only if the
    /// endpoint advertises an optional User extension with a writable string attribute;
    /// otherwise it is reported as skipped, with the reason
    Selftest {
        /// SCIM base URL, e.g. https://scim.example.com/scim/v2
        #[arg(long, value_name = "URL")]
        url: String,
        /// Bearer token; prefer the environment variable, which stays out of shell history
        #[arg(
            long,
            env = "SCIMLITE_TOKEN",
            hide_env_values = true,
            value_name = "TOKEN"
        )]
        token: String,
        /// Which IdP's flows to run
        #[arg(long, value_enum, default_value_t = IdpChoice::All)]
        idp: IdpChoice,
        /// Trust the certificates in this PEM file instead of the public roots. The server's
        /// own certificate (self-signed, even CA:TRUE as `openssl req -x509` makes it) is
        /// pinned: trusted exactly as it is, whatever host name --url uses. A private CA's
        /// certificate is trusted to have issued the server's, for the names it lists
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
    },
    /// Copy the SQLite database to FILE, consistently, while the server keeps serving
    /// (a PostgreSQL database is backed up with pg_dump)
    Backup {
        /// Where to write the copy
        file: PathBuf,
        /// Replace FILE if it exists
        #[arg(long)]
        force: bool,
    },
    /// Write users and groups as SCIM JSON lines (never passwords)
    Export {
        /// Only this tenant [default: all tenants]
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
        /// Write to FILE (created with mode 0600) [default: stdout]
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Read users and groups written by `export`, keeping their ids and meta
    Import {
        /// Read from FILE [default: stdin]
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Provisioning events: watch them as they happen, rotate their signing key
    Events {
        #[command(subcommand)]
        action: EventsAction,
    },
    /// Show the audit log: who changed what, and when (oldest first)
    Audit {
        /// Only entries about this resource: its id or name (userName, group displayName,
        /// token name), changed itself or added to / removed from a group
        #[arg(long, value_name = "ID")]
        resource: Option<String>,
        /// Only entries at or after TIME: RFC 3339 (2026-11-01T09:00:00Z), a date
        /// (2026-11-01, UTC midnight) or an age (90m, 24h, 7d)
        #[arg(long, value_name = "TIME", value_parser = parse_since)]
        since: Option<String>,
        /// Show the newest N matching entries
        #[arg(long, value_name = "N", default_value_t = 100,
              value_parser = clap::value_parser!(u64).range(1..))]
        limit: u64,
        /// Only this tenant [default: all tenants]
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
        /// One JSON object per line instead of text
        #[arg(long)]
        json: bool,
    },
}

/// `--since`: an RFC 3339 time, a date, or an age before now; returns the audit log's own
/// time format, so the comparison is plain text order.
pub fn parse_since(text: &str) -> Result<String, String> {
    use time::format_description::well_known::Rfc3339;
    use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time};
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(crate::store::format_utc_millis(t));
    }
    let ymd: Vec<&str> = text.split('-').collect();
    if let [y, m, d] = ymd.as_slice() {
        let date = (|| {
            let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
            Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
        })();
        if let Some(date) = date {
            return Ok(crate::store::format_utc_millis(
                PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc(),
            ));
        }
    }
    let split = text.len().saturating_sub(1);
    if let (Some(number), Some(unit)) = (text.get(..split), text.get(split..)) {
        // Bounded, so building the Duration cannot overflow.
        if let Ok(n @ 0..=3_162_240_000) = number.parse::<i64>() {
            let age = match unit {
                "s" => Some(Duration::seconds(n)),
                "m" => Some(Duration::minutes(n)),
                "h" => Some(Duration::hours(n)),
                "d" => Some(Duration::days(n)),
                _ => None,
            };
            if let Some(then) = age.and_then(|age| OffsetDateTime::now_utc().checked_sub(age)) {
                return Ok(crate::store::format_utc_millis(then));
            }
        }
    }
    Err(format!(
        "\"{text}\" is not a time: use RFC 3339 (2026-11-01T09:00:00Z), a date (2026-11-01) or an age (90m, 24h, 7d)"
    ))
}

#[derive(Subcommand, Debug)]
pub enum EventsAction {
    /// Print the events of the last hour, oldest first, one line each; --follow keeps
    /// printing new ones as they are committed
    Tail {
        /// Only this tenant [default: all tenants]
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
        /// Keep printing events as they happen, until interrupted
        #[arg(long, short = 'f')]
        follow: bool,
        /// Start at TIME instead of an hour ago: RFC 3339, a date or an age (90m, 24h, 7d)
        #[arg(long, value_name = "TIME", value_parser = parse_since)]
        since: Option<String>,
        /// Print each event's SET claims (unsigned) as one JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Create a new key to sign events with; the old ones stay in the JWKS
    RotateKey,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdpChoice {
    Okta,
    Entra,
    All,
}

#[derive(Subcommand, Debug)]
pub enum TokenAction {
    /// Create a token; the token is the last line of stdout
    Create {
        /// A label to recognise the token by (e.g. "okta")
        #[arg(long, default_value = "token")]
        name: String,
        #[command(flatten)]
        options: TokenArgs,
    },
    /// Create a token for a tenant and revoke all its other tokens, in one step; the new
    /// token is the last line of stdout
    Rotate {
        /// A label to recognise the token by (e.g. "okta")
        #[arg(long, default_value = "token")]
        name: String,
        #[command(flatten)]
        options: TokenArgs,
    },
    /// List tokens (never their secrets)
    List,
    /// Revoke a token by its id
    Revoke { id: String },
}

/// What `token create` and `token rotate` share.
#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// The tenant the token belongs to
    #[arg(long, value_name = "NAME", default_value = DEFAULT_TENANT)]
    tenant: String,
    /// read-only tokens may GET and POST …/.search only; admin tokens open the console only
    #[arg(long, value_enum, default_value_t = ScopeChoice::ReadWrite)]
    scope: ScopeChoice,
    /// When the token stops working: an RFC 3339 time (2027-01-31T00:00:00Z) or a duration
    /// from now (90d, 12h, 30m) [default: never]
    #[arg(long, value_name = "WHEN")]
    expires: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeChoice {
    ReadWrite,
    ReadOnly,
    /// Only the provisioning event feed (POST …/Events)
    Events,
    /// Only the admin console at /admin/ (never the SCIM API)
    Admin,
}

#[derive(Subcommand, Debug)]
pub enum TenantAction {
    /// Create a tenant: lower-case a-z, 0-9 and '-', at most 63 characters
    Create { name: String },
    /// List tenants with their numbers of users, groups and tokens
    List,
    /// Delete a tenant and its tokens; refused while it holds users or groups unless --purge
    Delete {
        name: String,
        /// Delete its users and groups too
        #[arg(long)]
        purge: bool,
    },
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("scimlite: {message}");
    ExitCode::FAILURE
}

pub fn run(cli: Cli) -> ExitCode {
    // A client of some other server: needs no configuration file.
    if let Some(Command::Selftest {
        url,
        token,
        idp,
        ca_cert,
    }) = &cli.command
    {
        crate::logging::init("warn", crate::logging::LogFormat::Text);
        return selftest(url, token, *idp, ca_cert.as_deref());
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    crate::logging::init(&config.log_level, config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&config),
        Command::CheckConfig => check_config(&config),
        Command::Token { action } => token(&config, action),
        Command::Tenant { action } => tenant(&config, action),
        Command::Selftest { .. } => fail("selftest is handled above"),
        Command::Backup { file, force } => backup(&config, &file, force),
        Command::Export { tenant, output } => export(&config, tenant.as_deref(), output.as_deref()),
        Command::Import { input } => import(&config, input.as_deref()),
        Command::Events { action } => events::run(&config, action),
        Command::Audit {
            resource,
            since,
            limit,
            tenant,
            json,
        } => audit(
            &config,
            &AuditQuery {
                tenant,
                resource,
                since,
                limit,
            },
            json,
        ),
    }
}

fn backup(config: &Config, file: &Path, force: bool) -> ExitCode {
    let Some(database) = config.database.sqlite_path() else {
        return fail(format!(
            "backup copies a SQLite file; {} is a PostgreSQL database: back it up with pg_dump \
             (e.g. `pg_dump --format=custom --file={} \"$DATABASE_URL\"`, restored with pg_restore; \
             README, \"Backups\"), or keep a portable copy with `scimlite export`",
            config.database,
            file.display()
        ));
    };
    match crate::store::sqlite::backup(database, file, force) {
        Ok(report) => {
            eprintln!(
                "backed up {} to {} ({} bytes, schema version {}, integrity check ok)",
                database.display(),
                file.display(),
                report.bytes,
                report.schema_version
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("backup failed: {e}")),
    }
}

/// `-` or nothing means stdout / stdin.
fn named_file(path: Option<&Path>) -> Option<&Path> {
    path.filter(|p| p.as_os_str() != "-")
}

fn export(config: &Config, tenant: Option<&str>, output: Option<&Path>) -> ExitCode {
    let store = match crate::server::open_store(config) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let result = match named_file(output) {
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            // Personal data: readable by the owner only.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = match options.open(path) {
                Ok(f) => f,
                Err(e) => return fail(format!("{}: {e}", path.display())),
            };
            let mut out = std::io::BufWriter::new(file);
            crate::transfer::export(store.as_ref(), &config.registry, tenant, &mut out).and_then(
                |summary| {
                    let file = out
                        .into_inner()
                        .map_err(|e| crate::transfer::TransferError::Write(e.into_error()))?;
                    file.sync_all()
                        .map_err(crate::transfer::TransferError::Write)?;
                    Ok(summary)
                },
            )
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            crate::transfer::export(store.as_ref(), &config.registry, tenant, &mut out)
        }
    };
    match result {
        Ok(s) => {
            eprintln!(
                "exported {} users and {} groups{}",
                s.users,
                s.groups,
                output
                    .map(|p| format!(" to {}", p.display()))
                    .unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("export failed: {e}")),
    }
}

fn import(config: &Config, input: Option<&Path>) -> ExitCode {
    let store = match crate::server::open_store(config) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let result = match named_file(input) {
        Some(path) => match std::fs::File::open(path) {
            Ok(f) => crate::transfer::import(
                store.as_ref(),
                &config.registry,
                &mut std::io::BufReader::new(f),
            ),
            Err(e) => return fail(format!("{}: {e}", path.display())),
        },
        None => crate::transfer::import(
            store.as_ref(),
            &config.registry,
            &mut std::io::stdin().lock(),
        ),
    };
    let source = input
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "stdin".into());
    match result {
        Ok(s) => {
            eprintln!(
                "imported {source}: {} created, {} updated, {} unchanged",
                s.created, s.updated, s.unchanged
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!(
            "import of {source} failed, nothing was stored: {e}"
        )),
    }
}

fn serve(config: &Config) -> ExitCode {
    log::info!("configuration: {}", config.origin);
    crate::memory::start_trimmer();
    let signals = match crate::server::catch_signals() {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot catch SIGTERM, SIGINT and SIGHUP: {e}")),
    };
    let handle = match crate::server::start(config) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    if let Some(first) = &handle.first_token {
        if let Err(e) = hand_over_first_token(config, &first.token) {
            handle.shutdown();
            return fail(format!("could not hand over the first token: {e}"));
        }
    }
    // Announced only now, so whoever waits for this line finds the first token handed over
    // (and a SIGTERM right after it drains the server).
    let addrs = handle.local_addrs();
    log::info!(
        "serving SCIM on {}://{}{}{} ({} workers, database {})",
        if config.tls.is_some() {
            "https"
        } else {
            "http"
        },
        handle.local_addr(),
        crate::api::BASE_PATH,
        match addrs.get(1..) {
            Some(more) if !more.is_empty() => {
                format!(" and on {}", crate::config::listen::list(more))
            }
            _ => String::new(),
        },
        config.workers,
        config.database
    );
    // Type=notify units start dependents only now: the listener is bound and migrations ran.
    crate::server::tell_systemd(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&format!("serving on {}", handle.local_addr())),
    ]);
    match crate::server::run_until(handle, &signals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Where the first token is written when stdout is not a terminal: beside a SQLite file
/// ([`first_token_path`]); for PostgreSQL, `scimlite.first-token` in the working directory
/// (the systemd unit's is its state directory, /var/lib/scimlite).
pub fn first_token_file(config: &Config) -> PathBuf {
    match config.database.sqlite_path() {
        Some(path) => first_token_path(path),
        None => PathBuf::from("scimlite.first-token"),
    }
}

/// Where the first token is written beside a SQLite database file.
pub fn first_token_path(database: &Path) -> PathBuf {
    let mut name = database
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".first-token");
    database.with_file_name(name)
}

/// Shows the first token once. On a terminal it goes to stdout. Otherwise (systemd, where
/// stdout is kept in the journal forever) it is written to a 0600 file beside the database and
/// only that file's path is logged.
fn hand_over_first_token(config: &Config, token: &str) -> std::io::Result<()> {
    if std::io::stdout().is_terminal() {
        eprintln!(
            "\nFirst run: created a bearer token. It is shown once and will not be shown again;"
        );
        eprintln!("store it now (Okta: API token / Entra ID: Secret Token):\n");
        let mut out = std::io::stdout().lock();
        writeln!(out, "{token}")?;
        out.flush()?;
        eprintln!();
        return Ok(());
    }
    let path = first_token_file(config);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&path)?;
    writeln!(f, "{token}")?;
    f.sync_all()?;
    log::warn!(
        "first run: created a bearer token and wrote it to {} (mode 0600); read it, store it, then delete the file",
        path.display()
    );
    Ok(())
}

fn check_config(config: &Config) -> ExitCode {
    if let Some(tls) = &config.tls {
        if let Err(e) = crate::tls::load(tls) {
            return fail(e);
        }
    }
    if let Some(dir) = config.database.sqlite_path().and_then(Path::parent) {
        if !dir.as_os_str().is_empty() && !dir.is_dir() {
            return fail(format!(
                "{}: key `database`: folder {} does not exist",
                config.origin,
                dir.display()
            ));
        }
    }
    // A SQLite file is checked once it exists; a PostgreSQL database is always connected to.
    if config.database.sqlite_path().is_none_or(Path::exists) {
        let store = match crate::server::open_store(config) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        // Values under an extension the config no longer declares stay in the database but
        // are neither returned nor filtered: say so, in case the declaration was lost.
        match store.stored_extensions() {
            Ok(stored) => {
                for (kind, urn, count) in stored {
                    if config.registry.resource(kind).extension(&urn).is_none() {
                        eprintln!(
                            "{}: warning: {count} {}(s) hold values under \"{urn}\", which is not declared: they are kept but not returned or filtered; declare it again with [[extension]] to serve them",
                            config.origin,
                            kind.name()
                        );
                    }
                }
            }
            Err(e) => return fail(e),
        }
    }
    eprintln!(
        "{}: ok (listen {}, {}, database {})",
        config.origin,
        crate::config::listen::list(&config.listen_addrs),
        if config.tls.is_some() {
            "TLS"
        } else if config.behind_tls_proxy {
            "plain HTTP behind a TLS proxy"
        } else {
            "plain HTTP on loopback"
        },
        config.database
    );
    ExitCode::SUCCESS
}

fn token(config: &Config, action: TokenAction) -> ExitCode {
    let store = match crate::server::open_store(config) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match action {
        TokenAction::Create { name, options } => {
            let options = match token_options(store.as_ref(), &options) {
                Ok(o) => o,
                Err(code) => return code,
            };
            match crate::auth::create_scoped_token(
                store.as_ref(),
                &options.0,
                &name,
                &options.1,
                config.pbkdf2_rounds,
                &Actor::cli(),
            ) {
                Ok(t) => {
                    eprintln!(
                        "created token {} ({name}) for tenant {}, {}{}; it is shown once:",
                        t.record.id,
                        t.record.tenant,
                        t.record.scope.as_str(),
                        expiry_note(&t.record)
                    );
                    println!("{}", t.token);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        TokenAction::Rotate { name, options } => {
            let options = match token_options(store.as_ref(), &options) {
                Ok(o) => o,
                Err(code) => return code,
            };
            match crate::auth::rotate_token(
                store.as_ref(),
                &options.0,
                &name,
                &options.1,
                config.pbkdf2_rounds,
                &Actor::cli(),
            ) {
                Ok((t, revoked)) => {
                    eprintln!(
                        "created token {} ({name}) for tenant {}, {}{}; revoked {}; a running server refuses the old ones from its next request. The new token is shown once:",
                        t.record.id,
                        t.record.tenant,
                        t.record.scope.as_str(),
                        expiry_note(&t.record),
                        if revoked.is_empty() {
                            "no other token".to_string()
                        } else {
                            revoked.join(", ")
                        }
                    );
                    println!("{}", t.token);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        TokenAction::List => match store.tokens() {
            Ok(tokens) => {
                // Columns are only ever appended: scripts read them by position.
                println!(
                    "{:<16}  {:<20}  {:<20}  {:<20}  {:<20}  {:<10}  expires",
                    "id", "name", "created", "last used", "tenant", "scope"
                );
                for t in tokens {
                    println!(
                        "{:<16}  {:<20}  {:<20}  {:<20}  {:<20}  {:<10}  {}",
                        t.id,
                        t.name,
                        listed_time(&t.created),
                        t.last_used.as_deref().map_or("never".into(), listed_time),
                        t.tenant,
                        t.scope.as_str(),
                        t.expires.as_deref().map_or("never".into(), listed_time)
                    );
                }
                // On stderr: stdout stays the table scripts read.
                eprintln!(
                    "Times are UTC, to the second. \"last used\" is recorded at most {} per token, so it may lag behind the token's latest request.",
                    match crate::auth::TOUCH_EVERY.as_secs() {
                        60 => "once a minute".to_string(),
                        secs => format!("once every {secs} seconds"),
                    }
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        TokenAction::Revoke { id } => match store.revoke_token(&id, &Actor::cli()) {
            Ok(true) => {
                eprintln!("revoked token {id}");
                ExitCode::SUCCESS
            }
            Ok(false) => fail(format!("no active token with id {id}")),
            Err(e) => fail(e),
        },
    }
}

/// A stored RFC 3339 time as `token list` and `tenant list` show it: UTC, whole seconds
/// (stored times carry milliseconds, trailing zeros dropped, or none at all). Anything that
/// does not parse is shown as stored.
fn listed_time(stored: &str) -> String {
    crate::store::utc_to_the_second(stored).unwrap_or_else(|| stored.to_string())
}

fn expiry_note(t: &crate::store::TokenRecord) -> String {
    match &t.expires {
        Some(at) => format!(", expires {at}"),
        None => ", never expires".into(),
    }
}

/// The tenant (which must exist) and options of `token create` / `token rotate`.
fn token_options(
    store: &dyn crate::store::Store,
    args: &TokenArgs,
) -> Result<(String, crate::auth::TokenOptions), ExitCode> {
    let expires = match &args.expires {
        Some(text) => Some(
            crate::auth::parse_expiry(text, time::OffsetDateTime::now_utc())
                .map_err(|e| fail(format!("--expires: {e}")))?,
        ),
        None => None,
    };
    let tenants = store.tenants().map_err(fail)?;
    if !tenants.iter().any(|t| t.name == args.tenant) {
        return Err(fail(format!(
            "no tenant named \"{}\"; create it with `scimlite tenant create {}`",
            args.tenant, args.tenant
        )));
    }
    let scope = match args.scope {
        ScopeChoice::ReadWrite => TokenScope::ReadWrite,
        ScopeChoice::ReadOnly => TokenScope::ReadOnly,
        ScopeChoice::Events => TokenScope::Events,
        ScopeChoice::Admin => TokenScope::Admin,
    };
    Ok((
        args.tenant.clone(),
        crate::auth::TokenOptions { scope, expires },
    ))
}

fn tenant(config: &Config, action: TenantAction) -> ExitCode {
    let store = match crate::server::open_store(config) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match action {
        TenantAction::Create { name } => {
            if let Err(e) = crate::tenant::validate_name(&name) {
                return fail(e);
            }
            match store.create_tenant(&name, &Actor::cli()) {
                Ok(()) => {
                    eprintln!(
                        "created tenant {name}: its URL is /scim/v2/{name}; give it a token with `scimlite token create --tenant {name}`"
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        TenantAction::List => match store.tenants() {
            Ok(tenants) => {
                println!(
                    "{:<20}  {:<20}  {:>8}  {:>8}  {:>6}",
                    "name", "created", "users", "groups", "tokens"
                );
                for t in tenants {
                    println!(
                        "{:<20}  {:<20}  {:>8}  {:>8}  {:>6}",
                        t.name,
                        listed_time(&t.created),
                        t.users,
                        t.groups,
                        t.tokens
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        TenantAction::Delete { name, purge } => {
            // Unprefixed first-run tokens and `token create` without --tenant use it.
            if name == DEFAULT_TENANT {
                return fail(format!("tenant {DEFAULT_TENANT} cannot be deleted"));
            }
            match store.delete_tenant(&name, purge, &Actor::cli()) {
                Ok(d) => {
                    eprintln!(
                        "deleted tenant {name}: {} users, {} groups, {} tokens",
                        d.users, d.groups, d.tokens
                    );
                    ExitCode::SUCCESS
                }
                Err(StoreError::NotFound) => fail(format!("no tenant named \"{name}\"")),
                Err(StoreError::Conflict(m)) => fail(format!(
                    "{m}; nothing was deleted (use --purge to delete them with the tenant)"
                )),
                Err(e) => fail(e),
            }
        }
    }
}

fn audit(config: &Config, query: &AuditQuery, json: bool) -> ExitCode {
    let store = match crate::server::open_store(config) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let entries = match store.audit(query) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let mut out = std::io::stdout().lock();
    for e in &entries {
        let line = if json {
            audit_json(e).to_string()
        } else {
            audit_text(e)
        };
        if writeln!(out, "{line}").is_err() {
            // A closed pipe (`| head`) is not an error worth a message.
            return ExitCode::SUCCESS;
        }
    }
    if entries.is_empty() && !json {
        eprintln!("no audit entries match");
    }
    ExitCode::SUCCESS
}

pub fn audit_json(e: &AuditEntry) -> serde_json::Value {
    serde_json::json!({
        "seq": e.seq,
        "at": e.at,
        "tenant": e.tenant,
        "actor": {"tokenId": e.actor_id, "name": e.actor_name, "via": e.via},
        "operation": e.operation,
        "resourceType": e.resource_type,
        "resourceId": e.resource_id,
        "resourceName": e.resource_name,
        "changes": e.changes,
    })
}

/// One line: when, who, what, and a summary of the changes.
fn audit_text(e: &AuditEntry) -> String {
    use serde_json::Value;
    let who = match &e.actor_id {
        Some(id) => format!("{} [{id}]", e.actor_name),
        None => e.actor_name.clone(),
    };
    let name = e
        .resource_name
        .as_deref()
        .map(|n| format!(" \"{n}\""))
        .unwrap_or_default();
    let tenant = if e.tenant == DEFAULT_TENANT {
        String::new()
    } else {
        format!(" tenant {}", e.tenant)
    };
    let mut parts = Vec::new();
    let names = |v: &Value| -> String {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|m| {
                        let id = m["value"].as_str().unwrap_or("?");
                        match m["name"].as_str() {
                            Some(n) => format!("{n} ({id})"),
                            None => id.to_string(),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    if let Some(attrs) = e.changes["attributes"].as_array() {
        let list: Vec<&str> = attrs.iter().filter_map(Value::as_str).collect();
        parts.push(format!("attributes: {}", list.join(", ")));
    }
    if let Some(active) = e.changes["active"].as_bool() {
        parts.push(format!("active: {active}"));
    }
    for (key, label) in [("added", "members added"), ("removed", "members removed")] {
        let v = &e.changes["members"][key];
        if v.is_array() {
            parts.push(format!("{label}: {}", names(v)));
        }
    }
    if e.changes["groups"].is_array() {
        parts.push(format!("left groups: {}", names(&e.changes["groups"])));
    }
    if let Some(n) = e.changes["memberCount"].as_i64() {
        parts.push(format!("had {n} members"));
    }
    if let Some(ids) = e.changes["revoked"].as_array() {
        let list: Vec<&str> = ids.iter().filter_map(Value::as_str).collect();
        parts.push(format!("revoked: {}", list.join(", ")));
    }
    if e.operation == "tenant-delete" {
        let n = |k: &str| e.changes[k].as_u64().unwrap_or(0);
        parts.push(format!(
            "deleted {} users, {} groups, {} tokens",
            n("users"),
            n("groups"),
            n("tokens")
        ));
    }
    format!(
        "{}  {who} via {}{tenant}  {} {} {}{name}{}",
        e.at,
        e.via,
        e.operation,
        e.resource_type,
        e.resource_id,
        if parts.is_empty() {
            String::new()
        } else {
            format!("  {}", parts.join("; "))
        }
    )
}

fn selftest(url: &str, token: &str, idp: IdpChoice, ca_cert: Option<&Path>) -> ExitCode {
    use crate::selftest::{self, flows, Idp};
    let pem = match ca_cert.map(std::fs::read).transpose() {
        Ok(p) => p,
        Err(e) => return fail(format!("--ca-cert: {e}")),
    };
    let client = match selftest::Client::new(url, token, pem.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let flows = match idp {
        IdpChoice::Okta => flows::for_idp(Idp::Okta),
        IdpChoice::Entra => flows::for_idp(Idp::Entra),
        IdpChoice::All => flows::all(),
    };
    let run_id = selftest::new_run_id();
    println!(
        "selftest {run_id} against {url}: flows {}",
        flows.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
    );
    let report = selftest::run(&client, &flows, &run_id, &mut |o| println!("{o}"));
    println!("{}", report.summary());
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        for line in report.failures() {
            eprintln!("{line}");
        }
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_times_are_utc_to_the_second() {
        for (stored, shown) in [
            ("2026-12-07T01:43:21.56Z", "2026-12-07T01:43:21Z"),
            ("2026-12-07T01:43:21.568Z", "2026-12-07T01:43:21Z"),
            ("2026-12-07T01:43:21Z", "2026-12-07T01:43:21Z"),
            ("2027-01-31T00:00:00.999+01:00", "2027-01-30T23:00:00Z"),
            ("not a time", "not a time"),
        ] {
            assert_eq!(listed_time(stored), shown, "{stored}");
        }
    }

    #[test]
    fn since_takes_a_time_a_date_or_an_age() {
        assert_eq!(
            parse_since("2026-11-01T09:00:00+01:00").unwrap(),
            "2026-11-01T08:00:00.000Z"
        );
        assert_eq!(
            parse_since("2026-11-01").unwrap(),
            "2026-11-01T00:00:00.000Z"
        );
        let day_ago = parse_since("1d").unwrap();
        let hour_ago = parse_since("60m").unwrap();
        assert!(
            day_ago < hour_ago && day_ago.len() == 24,
            "{day_ago} {hour_ago}"
        );
        for bad in [
            "yesterday",
            "2026-13-01",
            "5y",
            "-3d",
            "",
            "999999999999999d",
        ] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
