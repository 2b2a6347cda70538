//! `berth retention`.

use std::time::Duration;

use crate::maintenance::retention::{self, RetentionOptions};
use crate::settings::RetentionRules;

use super::StoreArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// Repository name or pattern (`team/*`); repeatable [default: every
    /// repository with rules in the policy file].
    #[arg(long = "repository")]
    repositories: Vec<String>,
    /// Keep the N most recently pushed tags.
    #[arg(long)]
    keep_last: Option<u32>,
    /// Delete tags pushed longer ago than this (30d, 720h, 2w).
    #[arg(long, value_parser = parse_age)]
    max_age: Option<String>,
    /// Only tags matching these patterns are candidates (repeatable).
    #[arg(long)]
    only_tags: Vec<String>,
    /// Tags matching these patterns are never deleted (repeatable).
    #[arg(long)]
    protect_tags: Vec<String>,
    /// Also delete manifests no tag reaches (older than the grace period).
    #[arg(long)]
    delete_untagged: bool,
    /// Report what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Untagged manifests younger than this many seconds are kept [default: 3600].
    #[arg(long)]
    grace_seconds: Option<u64>,
}

fn parse_age(text: &str) -> Result<String, String> {
    crate::settings::parse_duration(text).map(|_| text.to_string())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    super::maintenance(&args.store, |config, meta, _, settings| async move {
        let given = RetentionRules {
            keep_last: args.keep_last,
            max_age: args.max_age,
            only_tags: args.only_tags,
            protect_tags: args.protect_tags,
            delete_untagged: args.delete_untagged,
        };
        let rules = (!given.is_empty()).then_some(given);
        let repositories = if args.repositories.is_empty() {
            settings
                .iter()
                .filter(|s| s.retention.is_some())
                .map(|s| s.name.clone())
                .collect()
        } else {
            args.repositories
        };
        if repositories.is_empty() {
            anyhow::bail!(
                "no repository to apply retention to: name one with --repository, or give rules in the per-repository settings"
            );
        }
        let opts = RetentionOptions {
            repositories,
            rules,
            settings,
            grace: args
                .grace_seconds
                .map(Duration::from_secs)
                .unwrap_or(config.gc.grace),
            dry_run: args.dry_run,
        };
        let report = retention::run(meta.as_ref(), &opts).await?;
        let mut out = String::new();
        for t in &report.tags {
            out.push_str(&format!("{}:{} {}\n", t.repository, t.tag, t.digest));
        }
        let verb = if report.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        out.push_str(&format!(
            "retention {verb}: {} tags, {} untagged manifests in {} repositories ({:.3} s)",
            report.tags.len(),
            report.manifests.len(),
            report.repositories,
            report.duration.as_secs_f64()
        ));
        super::print(out)
    })
}
