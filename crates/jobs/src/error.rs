//! Why a job request was refused.

use vidsnap_domain::{PortError, Problems};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The request is wrong: each problem at its JSON path (`recipe.steps[0].op`,
    /// `params.every`, `inputs.video`).
    #[error("invalid job: {0}")]
    Invalid(Problems),
    #[error(transparent)]
    Port(#[from] PortError),
}
