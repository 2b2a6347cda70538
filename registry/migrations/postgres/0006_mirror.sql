-- The pull-through cache (src/mirror/): when each cached tag was last
-- checked against its upstream, who is fetching what (one upstream fetch
-- per digest or tag across processes), and when cached manifests were last
-- pulled (least recently pulled goes first when a mirror's cache is full).
CREATE TABLE mirror_tags (
    repository TEXT COLLATE "C" NOT NULL,
    tag        TEXT NOT NULL,
    checked_at BIGINT NOT NULL,
    PRIMARY KEY (repository, tag)
);
CREATE TABLE mirror_fetches (
    key        TEXT COLLATE "C" PRIMARY KEY,
    owner      TEXT NOT NULL,
    claimed_at BIGINT NOT NULL
);
CREATE TABLE mirror_pulls (
    repository TEXT COLLATE "C" NOT NULL,
    manifest   TEXT NOT NULL,
    pulled_at  BIGINT NOT NULL,
    PRIMARY KEY (repository, manifest)
);
CREATE INDEX mirror_pulls_at ON mirror_pulls (pulled_at);
