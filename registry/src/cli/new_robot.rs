//! `berth new-robot NAME`.

#[derive(clap::Args)]
pub struct Args {
    /// The robot's name, e.g. robot$team-a+ci.
    name: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let secret = hex::encode(bytes);
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(secret.as_bytes()));
    super::print(format!(
        "# secret (give it to the client; it is not stored anywhere):\n#   {secret}\n\
         # add to the policy file under robots:\n- name: {}\n  password_sha256: {hash}",
        args.name
    ))
}
