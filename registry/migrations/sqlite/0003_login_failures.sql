-- Failed logins per (client address, user), for the rate limit: shared by
-- every process on the database (see src/auth/limiter.rs).
CREATE TABLE login_failures (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL
);
CREATE INDEX login_failures_window ON login_failures (window_start);
