//! Browser sessions: a cookie holding a signed session token (`typ: "session"`, a JWT of its
//! own kind: it never passes as an access token, nor an access token as a session), set by
//! `POST /v1/auth/session` and accepted by the [`Caller`](super::Caller) extractor wherever a
//! bearer token is.
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (other sites' pages do not
//! send it), `Path=/`, and `Secure` when the request came over HTTPS. `SameSite` does not
//! separate origins of one site (`http://127.0.0.1:8080` and `http://127.0.0.1:9000`), so
//! every unsafe request (POST, PUT, PATCH, DELETE) authenticated by the cookie must also come
//! from the service's own origin: its `Origin` (or, without one, its `Referer`) must be the
//! request's own scheme and host, else 403 `csrf-refused`. Tokens and API keys are not
//! affected: another origin's page cannot send them without the user's own script doing it.
//!
//! Sessions are stateless: signing out removes the cookie from the browser, and a copied token
//! stays valid until it expires (`api.session_seconds`).

use axum::http::{HeaderMap, HeaderValue, header};

use crate::{ApiError, ApiSettings};

/// The cookie's name.
pub const COOKIE: &str = "vidsnap_session";

/// The session token in the request's `Cookie` headers, if any.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// Whether the client reached the service over HTTPS: the public URL says so, or a trusted
/// proxy's `X-Forwarded-Proto` does.
pub fn is_https(headers: &HeaderMap, settings: &ApiSettings) -> bool {
    settings.public_https
        || (settings.trust_forwarded_proto
            && forwarded(headers, "x-forwarded-proto").is_some_and(|p| p == "https"))
}

/// The first value of a proxy's `X-Forwarded-*` header, lower-cased.
fn forwarded(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then(|| first.to_ascii_lowercase())
}

/// The request's own origin (`http://host:port`), from its scheme and `Host` (or, behind a
/// trusted proxy, `X-Forwarded-Host`), default port left out.
fn own_origin(headers: &HeaderMap, settings: &ApiSettings) -> Option<String> {
    let scheme = if is_https(headers, settings) {
        "https"
    } else {
        "http"
    };
    let host = settings
        .trust_forwarded_proto
        .then(|| forwarded(headers, "x-forwarded-host"))
        .flatten()
        .or_else(|| {
            let host = headers.get(header::HOST)?.to_str().ok()?;
            Some(host.trim().to_ascii_lowercase())
        })?;
    Some(normalise(scheme, &host))
}

/// `scheme://host` without the scheme's default port.
fn normalise(scheme: &str, authority: &str) -> String {
    let default = if scheme == "https" { ":443" } else { ":80" };
    let host = authority.strip_suffix(default).unwrap_or(authority);
    format!("{scheme}://{host}")
}

/// The origin a browser says the request comes from: `Origin`, or the origin part of
/// `Referer` when there is no `Origin`. `Origin: null` (a sandboxed or privacy-sensitive
/// context) names no origin and matches nothing.
fn claimed_origin(headers: &HeaderMap) -> Option<String> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin
            .to_str()
            .unwrap_or("null")
            .trim()
            .to_ascii_lowercase();
        return Some(match origin.split_once("://") {
            Some((scheme, authority)) => normalise(scheme, authority),
            None => origin,
        });
    }
    let referer = headers.get(header::REFERER)?.to_str().ok()?.trim();
    let (scheme, rest) = referer.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(normalise(
        &scheme.to_ascii_lowercase(),
        &authority.to_ascii_lowercase(),
    ))
}

/// Refuses a request whose `Origin`/`Referer` is not the request's own origin. With
/// `required`, a request naming no origin is refused too (a cookie-authenticated write); without,
/// it passes (a client that is not a browser, such as curl signing in).
pub fn check_origin(
    headers: &HeaderMap,
    settings: &ApiSettings,
    required: bool,
) -> Result<(), ApiError> {
    let refused = |message: &str| {
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "csrf-refused",
            message,
        ))
    };
    match (claimed_origin(headers), own_origin(headers, settings)) {
        (Some(claimed), Some(own)) if claimed == own => Ok(()),
        (Some(_), _) => refused(
            "this request comes from another origin's page: a session cookie only \
             authenticates the service's own pages (send a token or an API key instead)",
        ),
        (None, _) if required => refused(
            "a write authenticated by the session cookie must name its origin (`Origin` or \
             `Referer`)",
        ),
        (None, _) => Ok(()),
    }
}

/// `Set-Cookie` for a new session of `max_age_seconds`.
pub fn set_cookie(token: &str, max_age_seconds: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{COOKIE}={token}; Path=/; Max-Age={max_age_seconds}; HttpOnly; SameSite=Strict{secure}"
    );
    // Tokens are base64url and dots: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    set_cookie("", 0, secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("value"));
        }
        map
    }

    #[test]
    fn finds_the_cookie_among_others() {
        let h = headers(&[("cookie", "a=1; vidsnap_session=tok.en; b=2")]);
        assert_eq!(cookie(&h), Some("tok.en"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "vidsnap_session=x")]);
        assert_eq!(cookie(&h), Some("x"));
        assert_eq!(cookie(&headers(&[("cookie", "vidsnap_session=")])), None);
        assert_eq!(cookie(&headers(&[("cookie", "xvidsnap_session=y")])), None);
    }

    #[test]
    fn same_origin_passes_and_others_are_refused() {
        let settings = ApiSettings::default();
        let own = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ];
        assert!(check_origin(&headers(&own), &settings, true).is_ok());
        let other = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:9000"),
        ];
        let refused = check_origin(&headers(&other), &settings, true).expect_err("refused");
        assert_eq!(refused.code, "csrf-refused");
        let https = [
            ("host", "127.0.0.1:8080"),
            ("origin", "https://127.0.0.1:8080"),
        ];
        assert!(check_origin(&headers(&https), &settings, true).is_err());
        let null = [("host", "127.0.0.1:8080"), ("origin", "null")];
        assert!(check_origin(&headers(&null), &settings, false).is_err());
        let referer = [
            ("host", "example.com"),
            ("referer", "http://example.com:80/jobs?x=1"),
        ];
        assert!(check_origin(&headers(&referer), &settings, true).is_ok());
        let nothing = [("host", "example.com")];
        assert!(check_origin(&headers(&nothing), &settings, true).is_err());
        assert!(check_origin(&headers(&nothing), &settings, false).is_ok());
    }

    #[test]
    fn a_trusted_proxy_decides_scheme_and_host() {
        let behind = [
            ("host", "10.0.0.5:8080"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "videos.example.com"),
            ("origin", "https://videos.example.com"),
        ];
        let trusting = ApiSettings {
            trust_forwarded_proto: true,
            ..ApiSettings::default()
        };
        assert!(is_https(&headers(&behind), &trusting));
        assert!(check_origin(&headers(&behind), &trusting, true).is_ok());
        // Not trusted: the headers are anyone's to send.
        let settings = ApiSettings::default();
        assert!(!is_https(&headers(&behind), &settings));
        assert!(check_origin(&headers(&behind), &settings, true).is_err());
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_https() {
        let plain = set_cookie("t", 60, false);
        assert_eq!(
            plain,
            "vidsnap_session=t; Path=/; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        assert!(
            set_cookie("t", 60, true)
                .to_str()
                .expect("ascii")
                .ends_with("; Secure")
        );
        assert!(
            clear_cookie(false)
                .to_str()
                .expect("ascii")
                .contains("Max-Age=0")
        );
    }
}
