//! `berth serve`.

use std::path::PathBuf;

use berth_config::ServerConfig;

#[derive(clap::Args)]
pub struct Args {
    /// YAML config file: any of the options below, in snake_case (listen,
    /// data_dir, …), and `repositories:` (per-repository settings).
    #[arg(long, env = berth_config::env::CONFIG)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: ServerConfig,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = super::load_config(args.config.as_deref(), args.settings)?;
    super::init_logging(config.log_format);
    crate::server::preflight(&config)?;
    super::block_on(crate::server::serve(config))?
}
