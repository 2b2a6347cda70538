//! `berth check-config FILE`: everything `serve` checks before it binds,
//! without starting; then the effective configuration as YAML.

use std::path::PathBuf;

use berth_config::ServerConfig;

use crate::config::Config;

#[derive(clap::Args)]
pub struct Args {
    /// The YAML config file to check.
    file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let file = ServerConfig::load(&args.file)?;
    crate::server::preflight(&Config::new(file.clone()))?;
    super::print(format!(
        "# {}: ok; the effective configuration:\n{}",
        args.file.display(),
        file.with_defaults().to_yaml()?.trim_end()
    ))
}
