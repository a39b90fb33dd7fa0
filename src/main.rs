use clap::Parser;

fn main() -> std::process::ExitCode {
    scimlite::cli::run(scimlite::cli::Cli::parse())
}
