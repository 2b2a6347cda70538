//! `berth`: see `berth --help`, and `berth_registry::cli`.

fn main() -> std::process::ExitCode {
    berth_registry::cli::run()
}
