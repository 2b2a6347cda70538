-- Failed logins per (client address, user), for the rate limit: shared by
-- every replica on the database (see src/auth/limiter.rs).
CREATE TABLE login_failures (
    key          TEXT COLLATE "C" PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start BIGINT NOT NULL
);
CREATE INDEX login_failures_window ON login_failures (window_start);
