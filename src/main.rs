//! The `rokt-export` binary: everything it does is in the library, behind `cli::main`.

fn main() -> std::process::ExitCode {
    rokt_export::cli::main()
}
