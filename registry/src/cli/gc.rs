//! `berth gc`.

use std::time::Duration;

use super::StoreArgs;
use crate::maintenance::gc::{self, GcOptions};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// Report what would be deleted; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Keep manifests no tag reaches (`--keep-untagged`, or `=false`)
    /// [default: the config's gc_keep_untagged].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    keep_untagged: Option<bool>,
    /// Keep anything younger than this many seconds [default: the config's
    /// gc_grace_seconds, 3600].
    #[arg(long)]
    grace_seconds: Option<u64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    super::maintenance(&args.store, |config, meta, blobs, _| async move {
        let grace = args
            .grace_seconds
            .map(Duration::from_secs)
            .unwrap_or(config.gc.grace);
        let opts = GcOptions {
            grace,
            delete_untagged: !args.keep_untagged.unwrap_or(config.gc.keep_untagged),
            dry_run: args.dry_run,
            cache_limits: crate::maintenance::evict::CacheLimit::of(&config.mirrors),
        };
        let report = gc::run(meta.as_ref(), blobs.as_ref(), &opts).await?;
        if report.skipped {
            return super::print(
                "gc skipped: another gc (a replica's schedule or another `berth gc`) \
                 is running on this database",
            );
        }
        let verb = if report.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        let mut out = format!(
            "gc {verb}: {} untagged manifests, {} blob links, {} empty repositories, {} blobs ({} bytes), \
             {} staging files ({} bytes), {} abandoned uploads; {} repositories in {:.3} s",
            report.manifests.len(),
            report.links,
            report.repositories_removed.len(),
            report.blobs,
            report.bytes,
            report.leftovers.staging_files,
            report.leftovers.staging_bytes,
            report.leftovers.uploads,
            report.repositories_checked,
            report.duration.as_secs_f64()
        );
        if !report.evicted.is_empty() {
            out.push_str(&format!(
                "\nevicted from mirror caches over their size (least recently pulled first): {} manifests",
                report.evicted.len()
            ));
        }
        if report.dry_run {
            out.push_str(&format!(
                "\nkept for the grace period ({}): {} manifests, {} blobs ({} bytes)",
                humantime::format_duration(grace),
                report.kept.manifests,
                report.kept.blobs,
                report.kept.bytes
            ));
        }
        super::print(out)
    })
}
