//! The API crate's integration tests, one binary: the OIDC verifier against a real JWKS server,
//! the OpenAPI description against the router it describes, and the HTTP server's limits on
//! clients over real sockets; browser sessions (the cookie, CSRF).

// Tests start helper processes (the OpenAPI validator) directly.
#![allow(clippy::disallowed_methods)]

mod cors;
mod oidc;
mod openapi;
mod server;
mod session;
