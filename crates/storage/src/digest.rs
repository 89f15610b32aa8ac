//! The running digest of an upload piece, by the algorithm its checksum names (tus
//! `Upload-Checksum`), shared by every staging backend.

use sha1::Sha1;
use sha2::{Digest, Sha256};
use vidsnap_domain::ChecksumAlgorithm;

pub(crate) enum Digester {
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Digester {
    pub(crate) fn new(algorithm: ChecksumAlgorithm) -> Self {
        match algorithm {
            ChecksumAlgorithm::Sha1 => Self::Sha1(Sha1::new()),
            ChecksumAlgorithm::Sha256 => Self::Sha256(Sha256::new()),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha1(h) => h.update(bytes),
            Self::Sha256(h) => h.update(bytes),
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
        }
    }
}
