-- What Berth read from the header of SIF blobs (src/sif.rs): one row per
-- blob described, gone with the blob. A blob's content never changes, so
-- neither does its row.
CREATE TABLE sif_blobs (
    digest                TEXT PRIMARY KEY REFERENCES blobs(digest) ON DELETE CASCADE,
    -- JSON (sif::SifImage); NULL when the blob is not a readable SIF,
    -- and `error` says why.
    description           TEXT,
    error                 TEXT,
    -- The image config library:// clients require (architecture, rootfs),
    -- derived from the description, and its digest (service/library.rs).
    library_config_digest TEXT,
    library_config        BLOB,
    described_at          INTEGER NOT NULL
);
CREATE INDEX sif_blobs_library_config ON sif_blobs (library_config_digest)
    WHERE library_config_digest IS NOT NULL;
