use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use scimlite_load::compare;
use scimlite_load::delivery::PushSettings;
use scimlite_load::target::{Mode, ServerSettings};
use scimlite_load::workload::Params;
use scimlite_load::{run, Options};

/// Replays IdP-shaped SCIM load (workload W1) against scimlite and prints requests/s and
/// latency per phase, as a table and as one JSON line (the last line of stdout).
///
/// Without --url or --binary it starts a fresh scimlite in this process on a temp database.
#[derive(Parser)]
#[command(name = "scimlite-load", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// SCIM base URL of a running server, e.g. http://127.0.0.1:8080/scim/v2; several,
    /// separated by commas, load instances of one service (worker connections go to each in
    /// turn)
    #[arg(long, global = true, requires = "token", conflicts_with = "binary")]
    url: Option<String>,
    /// Bearer token for --url
    #[arg(long, global = true, env = "SCIMLITE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Process id of the --url server, when it runs on this machine: its CPU time per
    /// operation is measured from /proc/PID/stat (several, comma-separated: their sum)
    #[arg(long, global = true, requires = "url", value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Start this scimlite binary as a child process on a temp database and load it
    #[arg(long, global = true)]
    binary: Option<PathBuf>,
    /// Users (N)
    #[arg(long, global = true, default_value_t = 10_000)]
    users: usize,
    /// Groups (G), the big group included
    #[arg(long, global = true, default_value_t = 50)]
    groups: usize,
    /// Members of each group other than the big one (K)
    #[arg(long, global = true, default_value_t = 50)]
    group_size: usize,
    /// Members of the big group (M ≤ N)
    #[arg(long, global = true, default_value_t = 10_000)]
    big_group: usize,
    /// Members per PATCH (B)
    #[arg(long, global = true, default_value_t = 100)]
    batch: usize,
    /// Parallel keep-alive connections (C)
    #[arg(long, global = true, default_value_t = 8)]
    concurrency: usize,
    /// Steady-state operations (S); defaults to N
    #[arg(long, global = true)]
    steady: Option<usize>,
    #[arg(long, global = true, default_value_t = 42)]
    seed: u64,
    /// Comma-separated: sync,groups,steady,list,micro,delete,ceilings
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "sync,groups,steady,list,micro,ceilings"
    )]
    phases: Vec<String>,
    /// Also run the delete phase (the same as adding `delete` to --phases)
    #[arg(long, global = true)]
    delete: bool,
    /// Prefix of every userName and displayName the run creates
    #[arg(long, global = true, default_value = "w1")]
    prefix: String,
    /// Group sizes of the add-one-member and GET-group micro-benchmarks
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "10,10000,100000"
    )]
    micro_sizes: Vec<usize>,
    /// Requests per size in the micro-benchmarks
    #[arg(long, global = true, default_value_t = 200)]
    micro_rounds: usize,
    /// Seconds of each timed read test and of each ceiling
    #[arg(long, global = true, default_value_t = 5.0)]
    duration: f64,
    /// PBKDF2 rounds of the first-run token of a server the generator starts (≥ 1000)
    #[arg(long, global = true, default_value_t = 1000)]
    pbkdf2_rounds: u32,
    /// `synchronous` of a server the generator starts: full or normal
    #[arg(long, global = true, default_value = "full")]
    synchronous: String,
    /// Print only the JSON line
    #[arg(long, global = true)]
    json: bool,
    /// Attach a push receiver (RFC 8935), run by the generator on 127.0.0.1, to the server
    /// the generator starts; after the load, wait until it has every event and check them
    #[arg(long, global = true, conflicts_with = "url")]
    push_receiver: bool,
    /// The receiver answers 503 for this many seconds from the start of the write phases
    /// (and at least to the first SET), then 202
    #[arg(long, global = true, requires = "push_receiver")]
    receiver_down: Option<f64>,
    /// Longest wait, after the load, for the receiver to have every event (seconds)
    #[arg(long, global = true, default_value_t = 120.0)]
    drain_timeout: f64,
    /// `[events] push_max_backoff_secs` of the server (default: the server's, 60)
    #[arg(long, global = true, requires = "push_receiver")]
    push_max_backoff: Option<u64>,
    /// A PostgreSQL URL (a user that may create a table; no TLS): the ceilings also measure
    /// its single-row commits at --concurrency, the bound of scimlite on that database
    #[arg(long, global = true)]
    postgres: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the workload (the default)
    Run,
    /// Measure only this machine's ceilings: raw SQLite commits and lookups, and a
    /// hello-world on scimlite's HTTP stack at --concurrency
    Ceilings,
    /// Print the JSON lines of earlier runs side by side as a Markdown table (each run's
    /// change against the first): e.g. the same load without and with a push receiver
    Compare {
        /// Files holding a run's output (the JSON line is its last line)
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Compare { files }) = &cli.command {
        let mut runs = Vec::new();
        for f in files {
            match compare::load(f) {
                Ok(v) => runs.push((
                    f.file_stem()
                        .map_or_else(|| f.display().to_string(), |s| s.to_string_lossy().into()),
                    v,
                )),
                Err(e) => {
                    eprintln!("scimlite-load: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        print!("{}", compare::table(&runs));
        return ExitCode::SUCCESS;
    }
    if !(cli.duration.is_finite() && cli.duration > 0.0) {
        eprintln!("--duration must be a positive number of seconds");
        return ExitCode::from(2);
    }
    let seconds = |v: f64| (0.0..1e9).contains(&v);
    if !seconds(cli.drain_timeout) || !cli.receiver_down.is_none_or(seconds) {
        eprintln!("--drain-timeout and --receiver-down must be 0 or more seconds");
        return ExitCode::from(2);
    }
    if cli.push_max_backoff == Some(0) {
        eprintln!("--push-max-backoff must be at least 1 second");
        return ExitCode::from(2);
    }
    let mut phases = cli.phases.clone();
    if cli.delete {
        phases.push("delete".into());
    }
    if matches!(cli.command, Some(Command::Ceilings)) {
        phases = vec!["ceilings".into()];
    }
    let mode = match (cli.url, cli.binary) {
        (Some(url), _) => Mode::Url {
            url,
            token: cli.token.unwrap_or_default(),
            server_pids: cli.server_pid,
        },
        (None, Some(bin)) => Mode::Binary(bin),
        (None, None) => Mode::InProcess,
    };
    let opts = Options {
        params: Params {
            users: cli.users,
            groups: cli.groups,
            group_size: cli.group_size,
            big_group: cli.big_group,
            batch: cli.batch,
            concurrency: cli.concurrency,
            steady: cli.steady.unwrap_or(cli.users),
            seed: cli.seed,
            prefix: cli.prefix,
            micro_sizes: cli.micro_sizes,
            micro_rounds: cli.micro_rounds,
            duration: Duration::from_secs_f64(cli.duration),
        },
        mode,
        server: ServerSettings {
            pbkdf2_rounds: cli.pbkdf2_rounds,
            synchronous: cli.synchronous,
            push: None,
        },
        push: cli.push_receiver.then(|| PushSettings {
            receiver_down: Duration::from_secs_f64(cli.receiver_down.unwrap_or(0.0)),
            drain_timeout: Duration::from_secs_f64(cli.drain_timeout),
            max_backoff_secs: cli.push_max_backoff,
        }),
        phases,
        print: !cli.json,
        postgres: cli.postgres,
    };
    match run(opts) {
        Ok(report) => {
            println!("{}", report.json);
            if report.errors() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("scimlite-load: {e}");
            ExitCode::from(2)
        }
    }
}
