use clap::Parser;

fn main() -> std::process::ExitCode {
    // Before any thread exists (see scimlite::memory).
    scimlite::memory::limit_malloc_arenas();
    let code = scimlite::cli::run(scimlite::cli::Cli::parse());
    scimlite::logging::flush();
    code
}
