-- Browser sessions signed out before they expired. A session cookie is a signed token with an id
-- (`jti`); signing out records the id here until the token would have expired anyway, and the
-- auth layer refuses a cookie whose id is listed. Expired rows are removed by later sign-outs.
CREATE TABLE revoked_sessions (
    id         TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
);
