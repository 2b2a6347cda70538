//! The SIF format (Singularity/Apptainer images), read from a prefix of the
//! file: the global header and the descriptor table, never the data
//! objects. Pure parsing, no I/O: the caller reads the first bytes of a
//! blob, asks [`table_end`] how far the descriptors reach, and parses.
//!
//! The layout is `github.com/apptainer/sif` (`pkg/sif`), spec version 01:
//! a 128-byte header (launch script, `SIF_MAGIC`, version, primary
//! architecture, UUID, creation and modification times, the descriptor
//! table's place and size, the data's), then a table of 585-byte
//! descriptors, little-endian and packed. Only descriptors marked used
//! describe objects, as `siftool list` shows them.

use serde::{Deserialize, Serialize};

/// The global header's length.
pub const HEADER_LEN: usize = 128;
/// One descriptor's length.
pub const DESCRIPTOR_LEN: usize = 585;
/// The most of a blob read to describe it: a descriptor table reaching
/// beyond is not read (`apptainer build` puts 48 descriptors at 4096, the
/// table ending before 32 KiB).
pub const MAX_PREFIX: usize = 1 << 20;

const MAGIC: &[u8; 10] = b"SIF_MAGIC\0";
const VERSION: &[u8; 3] = b"01\0";
/// High bits of a group or link id: "this is a group".
const GROUP_MASK: u32 = 0xf000_0000;
/// A signature's entity field holds the signing key's fingerprint first.
const FINGERPRINT_LEN: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SifError {
    #[error("{0} bytes is shorter than a SIF header ({HEADER_LEN} bytes)")]
    Short(usize),
    #[error("no SIF magic: not a SIF file")]
    Magic,
    #[error("SIF spec version `{0}` is not supported (01 is)")]
    Version(String),
    #[error("header field `{field}` is negative ({value})")]
    Negative { field: &'static str, value: i64 },
    #[error("the descriptor table ({size} bytes) cannot hold its {total} descriptors")]
    TableSize { total: i64, size: i64 },
    #[error(
        "the descriptor table ends at byte {0}, beyond the {MAX_PREFIX} bytes read to describe an image"
    )]
    TableTooFar(u64),
    #[error("the descriptor table ends at byte {end}; only {have} bytes were given")]
    Truncated { end: u64, have: usize },
}

/// What the header and the descriptors say about a SIF file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SifImage {
    /// The image's UUID.
    pub id: String,
    /// SIF spec version (`01`).
    pub version: String,
    /// The primary architecture (Go's names, as Apptainer reports them:
    /// amd64, arm64, ppc64le, …; `unknown` when unset).
    pub architecture: String,
    pub launch_script: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub modified: i64,
    /// Descriptor slots in the table, and how many are unused.
    pub descriptors_total: i64,
    pub descriptors_free: i64,
    /// Where the data objects start, and their bytes.
    pub data_offset: i64,
    pub data_size: i64,
    /// The data objects, in table order.
    pub objects: Vec<SifObject>,
}

/// One data object (a used descriptor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SifObject {
    pub id: u32,
    /// `deffile`, `env-vars`, `labels`, `partition`, `signature`,
    /// `generic-json`, `generic`, `crypto-message`, `sbom`,
    /// `oci-root-index`, `oci-blob`, or `unknown`.
    #[serde(rename = "type")]
    pub data_type: String,
    /// The object group, if in one.
    pub group: Option<u32>,
    /// The object (or, with `link_is_group`, the group) this one refers
    /// to: what a signature signs.
    pub link: Option<u32>,
    #[serde(default)]
    pub link_is_group: bool,
    /// Where the object's bytes are in the file, and how many.
    pub offset: i64,
    pub size: i64,
    /// Unix seconds.
    pub created: i64,
    pub modified: i64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<Partition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crypto_message: Option<CryptoMessage>,
    /// The SBOM's format (`spdx-json`, `cyclonedx-json`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom_format: Option<String>,
    /// The digest an OCI blob or root index object declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci_digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// `squashfs`, `ext3`, `archive`, `raw`, `encrypted-squashfs`,
    /// `gocryptfs-squashfs`, or `unknown`.
    pub filesystem: String,
    /// `system`, `primary-system`, `data`, `overlay`, or `unknown`.
    #[serde(rename = "type")]
    pub kind: String,
    pub architecture: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// `sha256`, `sha384`, `sha512`, `blake2s-256`, `blake2b-256`, or `unknown`.
    pub hash: String,
    /// The signing key's fingerprint, hex, upper case (as `siftool info`
    /// prints the entity); None if the descriptor names none.
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CryptoMessage {
    /// `openpgp`, `pem` or `unknown`.
    pub format: String,
    /// `clear-signature`, `rsa-oaep` or `unknown`.
    pub message: String,
}

impl SifImage {
    /// The partitions, in table order.
    pub fn partitions(&self) -> impl Iterator<Item = (&SifObject, &Partition)> {
        self.objects
            .iter()
            .filter_map(|o| o.partition.as_ref().map(|p| (o, p)))
    }

    /// The signature objects, in table order.
    pub fn signatures(&self) -> impl Iterator<Item = (&SifObject, &Signature)> {
        self.objects
            .iter()
            .filter_map(|o| o.signature.as_ref().map(|s| (o, s)))
    }

    /// Whether it carries a signature descriptor (checking a signature
    /// needs the signed bytes and the key: that is the puller's job).
    pub fn signed(&self) -> bool {
        self.signatures().next().is_some()
    }

    /// The fingerprints of the keys its signatures name, each once, in
    /// table order.
    pub fn fingerprints(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for fp in self.signatures().filter_map(|(_, s)| s.fingerprint.clone()) {
            if !out.contains(&fp) {
                out.push(fp);
            }
        }
        out
    }

    /// Whether the primary system partition is encrypted (what Apptainer's
    /// library client reports as `encrypted`).
    pub fn encrypted(&self) -> bool {
        self.partitions().any(|(_, p)| {
            p.kind == "primary-system"
                && matches!(
                    p.filesystem.as_str(),
                    "encrypted-squashfs" | "gocryptfs-squashfs"
                )
        })
    }
}

/// The fixed-size header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    launch_script: String,
    architecture: String,
    id: String,
    created: i64,
    modified: i64,
    descriptors_free: i64,
    descriptors_total: i64,
    descriptors_offset: i64,
    descriptors_size: i64,
    data_offset: i64,
    data_size: i64,
}

impl Header {
    /// The byte range of the descriptor table, within [`MAX_PREFIX`].
    fn table(&self) -> Result<(usize, usize), SifError> {
        for (field, value) in [
            ("descriptors total", self.descriptors_total),
            ("descriptors offset", self.descriptors_offset),
            ("descriptors size", self.descriptors_size),
        ] {
            if value < 0 {
                return Err(SifError::Negative { field, value });
            }
        }
        let table_bytes = (self.descriptors_total as u64).checked_mul(DESCRIPTOR_LEN as u64);
        if table_bytes.is_none_or(|b| b > self.descriptors_size as u64) {
            return Err(SifError::TableSize {
                total: self.descriptors_total,
                size: self.descriptors_size,
            });
        }
        let start = self.descriptors_offset as u64;
        let end = start.saturating_add(table_bytes.unwrap_or(u64::MAX));
        if end > MAX_PREFIX as u64 {
            return Err(SifError::TableTooFar(end));
        }
        Ok((start as usize, end as usize))
    }
}

/// Little-endian fields at fixed offsets of a slice known to be long enough.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.0.get(at..at + N) {
            out.copy_from_slice(src);
        }
        out
    }

    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.bytes(at))
    }

    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.bytes(at))
    }

    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.bytes(at))
    }

    /// A NUL-padded string field.
    fn text(&self, at: usize, len: usize) -> String {
        let raw = self.0.get(at..at + len).unwrap_or_default();
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        String::from_utf8_lossy(&raw[..end]).into_owned()
    }
}

fn header(prefix: &[u8]) -> Result<Header, SifError> {
    if prefix.len() < HEADER_LEN {
        return Err(SifError::Short(prefix.len()));
    }
    let f = Fields(&prefix[..HEADER_LEN]);
    if f.bytes::<10>(32) != *MAGIC {
        return Err(SifError::Magic);
    }
    let version: [u8; 3] = f.bytes(42);
    if version != *VERSION {
        return Err(SifError::Version(f.text(42, 3)));
    }
    let uuid: [u8; 16] = f.bytes(48);
    Ok(Header {
        launch_script: f.text(0, 32),
        architecture: architecture(f.bytes(45)),
        id: uuid_text(&uuid),
        created: f.i64(64),
        modified: f.i64(72),
        descriptors_free: f.i64(80),
        descriptors_total: f.i64(88),
        descriptors_offset: f.i64(96),
        descriptors_size: f.i64(104),
        data_offset: f.i64(112),
        data_size: f.i64(120),
    })
}

/// How many bytes from the start of the file [`parse`] needs: the end of
/// the descriptor table. Err if `prefix` (at least [`HEADER_LEN`] bytes)
/// is not a SIF header or its table lies beyond [`MAX_PREFIX`].
pub fn table_end(prefix: &[u8]) -> Result<usize, SifError> {
    let h = header(prefix)?;
    Ok(h.table()?.1.max(HEADER_LEN))
}

/// Describes the SIF whose first bytes are `prefix` (at least up to
/// [`table_end`]).
pub fn parse(prefix: &[u8]) -> Result<SifImage, SifError> {
    let h = header(prefix)?;
    let (start, end) = h.table()?;
    let table = prefix.get(start..end).ok_or(SifError::Truncated {
        end: end as u64,
        have: prefix.len(),
    })?;
    let objects = table
        .chunks_exact(DESCRIPTOR_LEN)
        .filter_map(descriptor)
        .collect();
    Ok(SifImage {
        id: h.id,
        version: "01".to_string(),
        architecture: h.architecture,
        launch_script: h.launch_script,
        created: h.created,
        modified: h.modified,
        descriptors_total: h.descriptors_total,
        descriptors_free: h.descriptors_free,
        data_offset: h.data_offset,
        data_size: h.data_size,
        objects,
    })
}

/// One descriptor; None if it is not used.
fn descriptor(raw: &[u8]) -> Option<SifObject> {
    let f = Fields(raw);
    if f.bytes::<1>(4)[0] == 0 {
        return None;
    }
    let data_type = f.i32(0);
    let group = f.u32(9) & !GROUP_MASK;
    let link = f.u32(13);
    let extra = Fields(raw.get(201..585).unwrap_or_default());
    let mut object = SifObject {
        id: f.u32(5),
        data_type: data_type_name(data_type).to_string(),
        group: (group != 0).then_some(group),
        link: (link & !GROUP_MASK != 0).then_some(link & !GROUP_MASK),
        link_is_group: link & GROUP_MASK == GROUP_MASK,
        offset: f.i64(17),
        size: f.i64(25),
        created: f.i64(41),
        modified: f.i64(49),
        name: f.text(73, 128),
        partition: None,
        signature: None,
        crypto_message: None,
        sbom_format: None,
        oci_digest: None,
    };
    match data_type {
        PARTITION => {
            object.partition = Some(Partition {
                filesystem: fs_name(extra.i32(0)).to_string(),
                kind: part_name(extra.i32(4)).to_string(),
                architecture: architecture(extra.bytes(8)),
            })
        }
        SIGNATURE => {
            let entity: [u8; FINGERPRINT_LEN] = extra.bytes(4);
            object.signature = Some(Signature {
                hash: hash_name(extra.i32(0)).to_string(),
                fingerprint: entity
                    .iter()
                    .any(|&b| b != 0)
                    .then(|| hex::encode_upper(entity)),
            })
        }
        CRYPTO_MESSAGE => {
            object.crypto_message = Some(CryptoMessage {
                format: match extra.i32(0) {
                    1 => "openpgp",
                    2 => "pem",
                    _ => "unknown",
                }
                .to_string(),
                message: match extra.i32(4) {
                    0x100 => "clear-signature",
                    0x200 => "rsa-oaep",
                    _ => "unknown",
                }
                .to_string(),
            })
        }
        SBOM => object.sbom_format = Some(sbom_name(extra.i32(0)).to_string()),
        OCI_ROOT_INDEX | OCI_BLOB => object.oci_digest = Some(extra.text(0, 384)),
        _ => {}
    }
    Some(object)
}

const PARTITION: i32 = 0x4004;
const SIGNATURE: i32 = 0x4005;
const CRYPTO_MESSAGE: i32 = 0x4008;
const SBOM: i32 = 0x4009;
const OCI_ROOT_INDEX: i32 = 0x400a;
const OCI_BLOB: i32 = 0x400b;

fn data_type_name(t: i32) -> &'static str {
    match t {
        0x4001 => "deffile",
        0x4002 => "env-vars",
        0x4003 => "labels",
        PARTITION => "partition",
        SIGNATURE => "signature",
        0x4006 => "generic-json",
        0x4007 => "generic",
        CRYPTO_MESSAGE => "crypto-message",
        SBOM => "sbom",
        OCI_ROOT_INDEX => "oci-root-index",
        OCI_BLOB => "oci-blob",
        _ => "unknown",
    }
}

fn fs_name(t: i32) -> &'static str {
    match t {
        1 => "squashfs",
        2 => "ext3",
        3 => "archive",
        4 => "raw",
        5 => "encrypted-squashfs",
        6 => "gocryptfs-squashfs",
        _ => "unknown",
    }
}

fn part_name(t: i32) -> &'static str {
    match t {
        1 => "system",
        2 => "primary-system",
        3 => "data",
        4 => "overlay",
        _ => "unknown",
    }
}

fn hash_name(t: i32) -> &'static str {
    match t {
        1 => "sha256",
        2 => "sha384",
        3 => "sha512",
        4 => "blake2s-256",
        5 => "blake2b-256",
        _ => "unknown",
    }
}

fn sbom_name(t: i32) -> &'static str {
    match t {
        1 => "cyclonedx-json",
        2 => "cyclonedx-xml",
        3 => "github-json",
        4 => "spdx-json",
        5 => "spdx-rdf",
        6 => "spdx-tag-value",
        7 => "spdx-yaml",
        8 => "syft-json",
        9 => "trivy-json",
        _ => "unknown",
    }
}

/// The architecture a 3-byte SIF code (`02\0`) stands for, in Go's names.
fn architecture(code: [u8; 3]) -> String {
    let name = match &code {
        b"01\0" => "386",
        b"02\0" => "amd64",
        b"03\0" => "arm",
        b"04\0" => "arm64",
        b"05\0" => "ppc64",
        b"06\0" => "ppc64le",
        b"07\0" => "mips",
        b"08\0" => "mipsle",
        b"09\0" => "mips64",
        b"10\0" => "mips64le",
        b"11\0" => "s390x",
        b"12\0" => "riscv64",
        b"13\0" => "loong64",
        _ => "unknown",
    };
    name.to_string()
}

fn uuid_text(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Human-readable names, as `siftool` prints them (for `berth sif`).
pub mod display {
    use super::{Partition, SifObject};

    /// The TYPE column of `siftool list`: `FS (Squashfs/*System/amd64)`,
    /// `Signature (SHA-256)`, `Def.FILE`, …
    pub fn object_type(o: &SifObject) -> String {
        let base = match o.data_type.as_str() {
            "deffile" => "Def.FILE",
            "env-vars" => "Env.Vars",
            "labels" => "JSON.Labels",
            "partition" => "FS",
            "signature" => "Signature",
            "generic-json" => "JSON.Generic",
            "generic" => "Generic/Raw",
            "crypto-message" => "Cryptographic Message",
            "sbom" => "SBOM",
            "oci-root-index" => "OCI.RootIndex",
            "oci-blob" => "OCI.Blob",
            _ => "Unknown",
        };
        if let Some(p) = &o.partition {
            return format!("{base} ({})", partition(p));
        }
        if let Some(s) = &o.signature {
            return format!("{base} ({})", hash(&s.hash));
        }
        base.to_string()
    }

    /// `Squashfs/*System/amd64`.
    pub fn partition(p: &Partition) -> String {
        let fs = match p.filesystem.as_str() {
            "squashfs" => "Squashfs",
            "ext3" => "Ext3",
            "archive" => "Archive",
            "raw" => "Raw",
            "encrypted-squashfs" => "Encrypted squashfs",
            "gocryptfs-squashfs" => "Gocryptfs squashfs",
            _ => "Unknown",
        };
        let kind = match p.kind.as_str() {
            "system" => "System",
            "primary-system" => "*System",
            "data" => "Data",
            "overlay" => "Overlay",
            _ => "Unknown",
        };
        format!("{fs}/{kind}/{}", p.architecture)
    }

    /// `SHA-256`, as siftool names hash types.
    pub fn hash(h: &str) -> &'static str {
        match h {
            "sha256" => "SHA-256",
            "sha384" => "SHA-384",
            "sha512" => "SHA-512",
            "blake2s-256" => "BLAKE2s-256",
            "blake2b-256" => "BLAKE2b-256",
            _ => "Unknown",
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A descriptor to write with [`build`].
    pub(crate) struct Object {
        pub data_type: i32,
        pub id: u32,
        pub group: u32,
        pub link: u32,
        pub offset: i64,
        pub size: i64,
        pub name: &'static str,
        pub extra: Vec<u8>,
    }

    /// A SIF prefix as sif/v2 writes one: header, then `slots`
    /// descriptors at 4096 (the used ones first).
    pub(crate) fn build(arch: &[u8; 3], objects: &[Object], slots: usize) -> Vec<u8> {
        let table = 4096usize;
        let mut b = vec![0u8; table + slots * DESCRIPTOR_LEN];
        b[..30].copy_from_slice(b"#!/usr/bin/env run-singularity");
        b[32..42].copy_from_slice(MAGIC);
        b[42..45].copy_from_slice(VERSION);
        b[45..48].copy_from_slice(arch);
        b[48..64].copy_from_slice(&[0xab; 16]);
        let put =
            |b: &mut Vec<u8>, at: usize, v: i64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put(&mut b, 64, 1_700_000_000);
        put(&mut b, 72, 1_700_000_100);
        put(&mut b, 80, (slots - objects.len()) as i64);
        put(&mut b, 88, slots as i64);
        put(&mut b, 96, table as i64);
        put(&mut b, 104, (slots * DESCRIPTOR_LEN) as i64);
        put(&mut b, 112, (table + slots * DESCRIPTOR_LEN) as i64);
        put(&mut b, 120, 70_000);
        for (i, o) in objects.iter().enumerate() {
            let d = table + i * DESCRIPTOR_LEN;
            b[d..d + 4].copy_from_slice(&o.data_type.to_le_bytes());
            b[d + 4] = 1;
            b[d + 5..d + 9].copy_from_slice(&o.id.to_le_bytes());
            b[d + 9..d + 13].copy_from_slice(&o.group.to_le_bytes());
            b[d + 13..d + 17].copy_from_slice(&o.link.to_le_bytes());
            put(&mut b, d + 17, o.offset);
            put(&mut b, d + 25, o.size);
            put(&mut b, d + 41, 1_700_000_000);
            put(&mut b, d + 49, 1_700_000_000);
            b[d + 73..d + 73 + o.name.len()].copy_from_slice(o.name.as_bytes());
            b[d + 201..d + 201 + o.extra.len()].copy_from_slice(&o.extra);
        }
        b
    }

    pub(crate) fn signed_amd64() -> Vec<u8> {
        let mut part = Vec::new();
        part.extend(1i32.to_le_bytes());
        part.extend(2i32.to_le_bytes());
        part.extend(b"02\0");
        let mut sig = Vec::new();
        sig.extend(1i32.to_le_bytes());
        sig.extend(hex::decode("433FE984155206BD962725E20E8713472A879943").unwrap());
        build(
            b"02\0",
            &[
                Object {
                    data_type: 0x4001,
                    id: 1,
                    group: GROUP_MASK | 1,
                    link: 0,
                    offset: 32176,
                    size: 18,
                    name: "recipe.def",
                    extra: vec![],
                },
                Object {
                    data_type: PARTITION,
                    id: 2,
                    group: GROUP_MASK | 1,
                    link: 0,
                    offset: 32768,
                    size: 70000,
                    name: "rootfs.squashfs",
                    extra: part,
                },
                Object {
                    data_type: SIGNATURE,
                    id: 3,
                    group: GROUP_MASK,
                    link: GROUP_MASK | 1,
                    offset: 102768,
                    size: 644,
                    name: "",
                    extra: sig,
                },
            ],
            48,
        )
    }

    #[test]
    fn reads_header_and_used_descriptors() {
        let b = signed_amd64();
        assert_eq!(table_end(&b[..HEADER_LEN]).unwrap(), 4096 + 48 * 585);
        let img = parse(&b).unwrap();
        assert_eq!(img.architecture, "amd64");
        assert_eq!(img.id, "abababab-abab-abab-abab-abababababab");
        assert_eq!(img.launch_script, "#!/usr/bin/env run-singularity");
        assert_eq!((img.created, img.modified), (1_700_000_000, 1_700_000_100));
        assert_eq!((img.descriptors_total, img.descriptors_free), (48, 45));
        assert_eq!(img.objects.len(), 3, "unused slots are not objects");

        let def = &img.objects[0];
        assert_eq!(
            (def.data_type.as_str(), def.id, def.group, def.link),
            ("deffile", 1, Some(1), None)
        );
        assert_eq!(
            (def.offset, def.size, def.name.as_str()),
            (32176, 18, "recipe.def")
        );

        let (obj, p) = img.partitions().next().unwrap();
        assert_eq!(obj.id, 2);
        assert_eq!(
            (
                p.filesystem.as_str(),
                p.kind.as_str(),
                p.architecture.as_str()
            ),
            ("squashfs", "primary-system", "amd64")
        );
        assert_eq!(display::object_type(obj), "FS (Squashfs/*System/amd64)");

        let (obj, s) = img.signatures().next().unwrap();
        assert_eq!(
            (obj.group, obj.link, obj.link_is_group),
            (None, Some(1), true)
        );
        assert_eq!(s.hash, "sha256");
        assert_eq!(
            s.fingerprint.as_deref(),
            Some("433FE984155206BD962725E20E8713472A879943")
        );
        assert_eq!(display::object_type(obj), "Signature (SHA-256)");
        assert!(img.signed());
        assert!(!img.encrypted());
        assert_eq!(
            img.fingerprints(),
            ["433FE984155206BD962725E20E8713472A879943"]
        );

        // Stored as JSON and read back unchanged.
        let json = serde_json::to_string(&img).unwrap();
        assert_eq!(serde_json::from_str::<SifImage>(&json).unwrap(), img);
    }

    #[test]
    fn refuses_what_is_not_a_sif() {
        let good = signed_amd64();
        assert_eq!(parse(&good[..100]), Err(SifError::Short(100)));
        let mut b = good.clone();
        b[32] = b'X';
        assert_eq!(parse(&b), Err(SifError::Magic));
        let mut b = good.clone();
        b[42..45].copy_from_slice(b"02\0");
        assert_eq!(parse(&b), Err(SifError::Version("02".into())));
        // The table must be there, hold its descriptors, and be near the start.
        assert!(matches!(
            parse(&good[..5000]),
            Err(SifError::Truncated { have: 5000, .. })
        ));
        let mut b = good.clone();
        b[104..112].copy_from_slice(&585i64.to_le_bytes());
        assert!(matches!(parse(&b), Err(SifError::TableSize { .. })));
        let mut b = good.clone();
        b[96..104].copy_from_slice(&(2i64 << 20).to_le_bytes());
        assert!(matches!(table_end(&b), Err(SifError::TableTooFar(_))));
        let mut b = good.clone();
        b[88..96].copy_from_slice(&i64::MAX.to_le_bytes());
        assert!(matches!(parse(&b), Err(SifError::TableSize { .. })));
        let mut b = good;
        b[96..104].copy_from_slice(&(-1i64).to_le_bytes());
        assert!(matches!(parse(&b), Err(SifError::Negative { .. })));
    }

    #[test]
    fn encrypted_primary_partition_and_unknown_codes() {
        let mut part = Vec::new();
        part.extend(5i32.to_le_bytes());
        part.extend(2i32.to_le_bytes());
        part.extend(b"99\0");
        let b = build(
            b"\0\0\0",
            &[Object {
                data_type: PARTITION,
                id: 1,
                group: GROUP_MASK | 1,
                link: 0,
                offset: 4096,
                size: 10,
                name: "",
                extra: part,
            }],
            4,
        );
        let img = parse(&b).unwrap();
        assert_eq!(img.architecture, "unknown");
        assert!(img.encrypted());
        assert!(!img.signed());
        assert_eq!(img.partitions().next().unwrap().1.architecture, "unknown");
    }
}
