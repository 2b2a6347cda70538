//! `berth usage`: bytes, blobs, manifests and tags per repository, quota
//! usage, and the blobs stored (each once).

use super::StoreArgs;
use crate::maintenance;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    super::maintenance(&args.store, |_, meta, _, settings| async move {
        let usage = maintenance::usage(meta.as_ref(), &settings).await?;
        if args.json {
            return super::print(serde_json::to_string_pretty(&usage)?);
        }
        let mut out = format!(
            "{:<40} {:>15} {:>7} {:>9} {:>7}",
            "REPOSITORY", "BYTES", "BLOBS", "MANIFESTS", "TAGS"
        );
        for r in &usage.repositories {
            out.push_str(&format!(
                "\n{:<40} {:>15} {:>7} {:>9} {:>7}",
                r.name, r.bytes, r.blobs, r.manifests, r.tags
            ));
        }
        for q in &usage.quotas {
            out.push_str(&format!(
                "\nquota {}: {} of {} bytes",
                q.pattern, q.used_bytes, q.limit_bytes
            ));
        }
        out.push_str(&format!(
            "\nstored: {} blobs, {} bytes (each blob once, however many repositories link it)",
            usage.stored_blobs, usage.stored_bytes
        ));
        super::print(out)
    })
}
