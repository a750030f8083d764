//! The `rokt-export` binary: parse the command line, set up logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use rokt_export::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    rokt_export::telemetry::init(cli.log_format);
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
