//! Playback URLs of packaged jobs (HLS and DASH through the API).
//!
//! A player fetches `…/master.m3u8` or `…/manifest.mpd` and resolves every other URI against
//! it, so the authorization must survive relative resolution: it is a path segment, not a query
//! (relative URIs drop the query). The segment is a token naming the job and its `package` step
//! with an expiry, signed with the server's key: `{job}.{step}.{expires}.{signature}`. It covers
//! that step's folder and nothing else, works on local and S3 storage alike, and needs no call
//! to the API per segment beyond the fetch itself.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use vidsnap_domain::JobId;

/// How long a playback URL works: a feature film with pauses.
pub const PLAYBACK_TTL: Duration = Duration::from_secs(6 * 3600);

/// Why a playback token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed, or signed with another key, or for another job or step.
    Invalid,
    /// Past its expiry.
    Expired,
}

/// Signs and checks playback tokens.
#[derive(Clone)]
pub struct PlaybackSigner {
    key: Vec<u8>,
    /// The API's public origin, e.g. `https://vidsnap.example.com`.
    base: String,
}

impl std::fmt::Debug for PlaybackSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackSigner")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl PlaybackSigner {
    pub fn new(key: Vec<u8>, base: impl Into<String>) -> Self {
        Self {
            key,
            base: base.into().trim_end_matches('/').to_owned(),
        }
    }

    fn signature(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"vidsnap-playback\n");
        mac.update(payload.as_bytes());
        mac
    }

    /// The package folder's URL (ending in `/`) for `step` of `job`, valid until the returned time.
    pub fn folder(&self, job: JobId, step: &str, now: DateTime<Utc>) -> (String, DateTime<Utc>) {
        let expires = now + PLAYBACK_TTL;
        let payload = format!("{job}.{step}.{}", expires.timestamp());
        let signature = URL_SAFE_NO_PAD.encode(self.signature(&payload).finalize().into_bytes());
        (
            format!("{}/v1/play/{payload}.{signature}/", self.base),
            expires,
        )
    }

    /// The job and step a token covers, if it is genuine and not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<(JobId, String), Refusal> {
        let (payload, signature) = token.rsplit_once('.').ok_or(Refusal::Invalid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Refusal::Invalid)?;
        self.signature(payload)
            .verify_slice(&signature)
            .map_err(|_| Refusal::Invalid)?;
        let mut parts = payload.splitn(3, '.');
        let (Some(job), Some(step), Some(expires)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::Invalid);
        };
        let job: JobId = job.parse().map_err(|_| Refusal::Invalid)?;
        let expires: i64 = expires.parse().map_err(|_| Refusal::Invalid)?;
        if now.timestamp() >= expires {
            return Err(Refusal::Expired);
        }
        Ok((job, step.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(url: &str) -> &str {
        url.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
    }

    #[test]
    fn a_token_covers_its_job_and_step_until_it_expires() {
        let signer = PlaybackSigner::new(b"key".to_vec(), "http://h/");
        let job = JobId::new();
        let now = Utc::now();
        let (url, expires) = signer.folder(job, "package", now);
        assert!(url.starts_with("http://h/v1/play/"), "{url}");
        assert!(url.ends_with('/'));
        assert_eq!(
            signer.verify(token(&url), now),
            Ok((job, "package".to_owned()))
        );
        assert_eq!(signer.verify(token(&url), expires), Err(Refusal::Expired));
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let signer = PlaybackSigner::new(b"key".to_vec(), "http://h");
        let now = Utc::now();
        let (url, _) = signer.folder(JobId::new(), "package", now);
        let genuine = token(&url).to_owned();
        let other_job = genuine.replacen(&genuine[..8], "00000000", 1);
        let later = {
            let parts: Vec<&str> = genuine.split('.').collect();
            format!(
                "{}.{}.{}.{}",
                parts[0],
                parts[1],
                parts[2].parse::<i64>().expect("a number") + 1,
                parts[3]
            )
        };
        let other_step = genuine.replacen(".package.", ".frames.", 1);
        let other_key = PlaybackSigner::new(b"another".to_vec(), "http://h");
        for bad in [
            other_job.as_str(),
            &later,
            &other_step,
            "",
            "a.b",
            "....",
            &genuine[1..],
        ] {
            assert_eq!(signer.verify(bad, now), Err(Refusal::Invalid), "{bad}");
        }
        assert_eq!(other_key.verify(&genuine, now), Err(Refusal::Invalid));
    }
}
