//! The acceptance rules, shared by the CLI, the API and the workers: extension, content, streams,
//! duration and limits. Pure functions over what the probe found.

use serde::Serialize;
use vidsnap_domain::{Container, ErrorCode, Limits};

use crate::{MediaError, probe::Probe};

/// Demuxers of real video formats that Vidsnap can read but does not accept by default; any other
/// unaccepted content (text, audio, images) is "not a video".
const OTHER_VIDEO_DEMUXERS: [&str; 8] = ["mpeg", "ogg", "h264", "hevc", "m4v", "mxf", "rm", "nut"];

/// The outcome of validation, as shown by `vidsnap probe` and stored with a video.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub accepted: bool,
    /// The container the content was recognised as, when it is one Vidsnap knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Verdict {
    pub(crate) fn accept(container: Container) -> Self {
        Self {
            accepted: true,
            container: Some(container),
            code: None,
            message: None,
        }
    }

    pub(crate) fn reject(error: &MediaError) -> Self {
        Self {
            accepted: false,
            container: None,
            code: Some(error.code()),
            message: Some(error.to_string()),
        }
    }

    /// The rejection as an error, for callers that stop on it.
    pub fn into_result(self) -> Result<Container, MediaError> {
        match (self.accepted, self.container, self.code) {
            (true, Some(container), _) => Ok(container),
            (_, _, code) => Err(MediaError::rejected(
                code.unwrap_or(ErrorCode::Internal),
                self.message.unwrap_or_default(),
            )),
        }
    }
}

/// The extension check, made before any bytes are read (the API makes it on the file name alone).
pub fn check_file_name(file_name: &str, limits: &Limits) -> Result<Container, MediaError> {
    Container::from_file_name(file_name)
        .filter(|c| limits.containers.contains(c))
        .ok_or_else(|| {
            MediaError::rejected(
                ErrorCode::UnsupportedFormat,
                format!(
                    "{file_name:?} does not have an accepted extension ({})",
                    Container::list(&limits.containers)
                ),
            )
        })
}

/// The size checks, made before probing.
pub fn check_size(size_bytes: u64, limits: &Limits) -> Result<(), MediaError> {
    if size_bytes == 0 {
        return Err(MediaError::rejected(
            ErrorCode::NotAVideo,
            "the file is empty",
        ));
    }
    match limits.max_bytes {
        Some(max) if size_bytes > max => Err(MediaError::rejected(
            ErrorCode::TooLarge,
            format!("the file is {size_bytes} bytes; the limit is {max}"),
        )),
        _ => Ok(()),
    }
}

/// The content checks on a successful probe whose duration has been settled.
pub fn check_probe(probe: &Probe, limits: &Limits) -> Result<Container, MediaError> {
    let container = match Container::from_demuxer(&probe.container) {
        Some(c) if limits.containers.contains(&c) => c,
        found => {
            let is_video_format = found.is_some()
                || probe
                    .container
                    .split(',')
                    .any(|d| OTHER_VIDEO_DEMUXERS.contains(&d));
            return Err(if is_video_format && probe.video().is_some() {
                MediaError::rejected(
                    ErrorCode::UnsupportedFormat,
                    format!(
                        "the content is {}, which is not accepted ({})",
                        probe
                            .container_long_name
                            .as_deref()
                            .unwrap_or(&probe.container),
                        Container::list(&limits.containers)
                    ),
                )
            } else {
                MediaError::rejected(
                    ErrorCode::NotAVideo,
                    format!(
                        "the content is {}, not a video",
                        probe
                            .container_long_name
                            .as_deref()
                            .unwrap_or(&probe.container)
                    ),
                )
            });
        }
    };
    let Some(video) = probe.video() else {
        return Err(MediaError::rejected(
            ErrorCode::NoVideoStream,
            "the file has no video stream",
        ));
    };
    let Some(duration) = probe.duration else {
        return Err(MediaError::rejected(
            ErrorCode::CorruptInput,
            "no duration could be found in the container, the stream or the packets",
        ));
    };
    if let Some(max) = limits.max_duration_seconds.filter(|max| duration > *max) {
        return Err(MediaError::rejected(
            ErrorCode::TooLong,
            format!("the video lasts {duration:.1} s; the limit is {max} s"),
        ));
    }
    let (width, height) = (video.width.unwrap_or(0), video.height.unwrap_or(0));
    let too_wide = limits.max_width.is_some_and(|max| width > max);
    let too_tall = limits.max_height.is_some_and(|max| height > max);
    if too_wide || too_tall {
        return Err(MediaError::rejected(
            ErrorCode::DimensionsTooLarge,
            format!(
                "the picture is {width}x{height}; the limit is {}x{}",
                limits.max_width.map_or("any".into(), |w| w.to_string()),
                limits.max_height.map_or("any".into(), |h| h.to_string()),
            ),
        ));
    }
    Ok(container)
}
