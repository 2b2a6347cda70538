//! Deterministic pseudo-random blob content, produced chunk by chunk so that a
//! gigabyte blob never sits in memory: the same seed always yields the same
//! bytes, so the digest can be computed in a first pass and the bytes sent in a
//! second.

use bytes::Bytes;
use futures::Stream;
use rand::{RngCore, SeedableRng, rngs::SmallRng};
use sha2::{Digest, Sha256};

/// Size of each generated chunk.
pub const CHUNK: usize = 1 << 20;

pub struct BlobGen {
    rng: SmallRng,
    remaining: u64,
}

impl BlobGen {
    pub fn new(seed: u64, size: u64) -> BlobGen {
        BlobGen {
            rng: SmallRng::seed_from_u64(seed),
            remaining: size,
        }
    }

    pub fn next_chunk(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let n = self.remaining.min(CHUNK as u64) as usize;
        let mut buf = vec![0u8; n];
        self.rng.fill_bytes(&mut buf);
        self.remaining -= n as u64;
        Some(Bytes::from(buf))
    }
}

/// `sha256:<hex>` of the blob `(seed, size)`, generated and hashed chunk by chunk.
pub fn digest_of(seed: u64, size: u64) -> String {
    let mut g = BlobGen::new(seed, size);
    let mut h = Sha256::new();
    while let Some(c) = g.next_chunk() {
        h.update(&c);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// The blob `(seed, size)` as a byte stream; `on_chunk` sees each chunk's length.
pub fn stream(
    seed: u64,
    size: u64,
    on_chunk: impl Fn(u64) + Send + 'static,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let g = BlobGen::new(seed, size);
    futures::stream::unfold(g, move |mut g| {
        let c = g.next_chunk();
        if let Some(c) = &c {
            on_chunk(c.len() as u64);
        }
        std::future::ready(c.map(|c| (Ok(c), g)))
    })
}

/// A small in-memory blob (layers and configs of small images).
pub fn small(seed: u64, size: usize) -> Bytes {
    let mut buf = vec![0u8; size];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut buf);
    Bytes::from(buf)
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_add_up_and_repeat() {
        let size = 3 * CHUNK as u64 + 17;
        let mut g = BlobGen::new(7, size);
        let mut total = 0u64;
        let mut all = Vec::new();
        while let Some(c) = g.next_chunk() {
            total += c.len() as u64;
            all.extend_from_slice(&c);
        }
        assert_eq!(total, size);
        assert_eq!(sha256(&all), digest_of(7, size));
        assert_ne!(digest_of(7, size), digest_of(8, size));
    }
}
