use clap::Parser;

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    scimlite::cli::run(scimlite::cli::Cli::parse())
}

/// glibc gives a thread that meets a locked arena an arena of its own (up to 8 per core) and
/// keeps what is freed there. With a thread per connection and handlers that build large
/// responses, that kept 50-65 MiB resident after the benchmark's load; two arenas keep 35 MiB
/// at the same throughput (docs/PERFORMANCE.md). `MALLOC_ARENA_MAX` in the environment wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter, and runs before any other thread
        // exists. Its result is ignored: a refusal leaves glibc's default.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
