//! The `rokt-export` binary: parse the command line, set up logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use rokt_export::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(
        cli.command,
        Some(Command::Demo(_) | Command::Validate | Command::Status | Command::Migrate)
    );
    let filter = if quiet {
        rokt_export::telemetry::QUIET_FILTER
    } else {
        rokt_export::telemetry::DEFAULT_FILTER
    };
    rokt_export::telemetry::init_with(cli.log_format, filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(rokt_export::exit::RUN_FAILED);
        }
    };
    ExitCode::from(runtime.block_on(cli::execute(cli)))
}
