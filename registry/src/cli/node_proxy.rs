//! `berth node-proxy`.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on; repeat for several (an address that cannot be
    /// bound, such as [::1] on a node without IPv6, is skipped).
    #[arg(long, default_values = ["127.0.0.1:5000", "[::1]:5000"])]
    listen: Vec<SocketAddr>,
    /// The registry to forward to, `host:port` (resolved at each connection).
    #[arg(long)]
    upstream: String,
    /// Seconds open connections may take to finish after SIGTERM.
    #[arg(long, default_value_t = 20)]
    drain_seconds: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    super::init_logging(crate::config::LogFormat::Text);
    super::block_on(async {
        let listeners = crate::node_proxy::bind(&args.listen).await?;
        let addrs: Vec<String> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .map(|a| a.to_string())
            .collect();
        tracing::info!(listen = %addrs.join(", "), upstream = %args.upstream, "forwarding to the registry");
        crate::node_proxy::serve(
            listeners,
            args.upstream,
            crate::server::shutdown_signal(),
            Duration::from_secs(args.drain_seconds),
        )
        .await;
        anyhow::Ok(())
    })?
}
