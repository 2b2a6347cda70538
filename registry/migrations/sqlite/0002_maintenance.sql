-- Garbage collection, retention, quotas (see src/maintenance/).

-- A blob an upload is publishing (renaming into place): gc keeps its hands
-- off until the upload links it or the claim is older than the grace period
-- (its publisher died).
CREATE TABLE blob_claims (
    digest     TEXT PRIMARY KEY,
    claimed_at INTEGER NOT NULL
);

-- A blob gc has removed from the metadata and is deleting from storage:
-- publishers of the same digest wait until the bytes are gone.
CREATE TABLE blob_tombstones (
    digest TEXT PRIMARY KEY,
    since  INTEGER NOT NULL
);

-- One row per gc or retention run: for logs, metrics and audits.
CREATE TABLE maintenance_runs (
    id                INTEGER PRIMARY KEY,
    kind              TEXT NOT NULL,  -- gc | retention
    started_at        INTEGER NOT NULL,
    finished_at       INTEGER NOT NULL,
    dry_run           INTEGER NOT NULL,
    ok                INTEGER NOT NULL,
    deleted_blobs     INTEGER NOT NULL,
    deleted_manifests INTEGER NOT NULL,
    deleted_tags      INTEGER NOT NULL,
    deleted_bytes     INTEGER NOT NULL,
    -- JSON: what was deleted (retention: every tag), or the error.
    detail            TEXT
);

-- Deleting a manifest cascades to its tags: look them up by manifest.
CREATE INDEX tags_manifest ON tags(repository_id, manifest_digest);

