//! Turns a decoded frame into an image file: display rotation, optional down-scaling, the pixel
//! format the encoder needs (one libavfilter graph, a [`Chain`]), then the image encoder.
//! Storyboard tiles and the pictures measured for scenes and posters go through a `Chain` too.

use std::path::Path;

use ffmpeg_next::{Dictionary, Packet, codec, encoder, filter, format::Pixel, frame};
use vidsnap_domain::{ErrorCode, ImageFormat, Quality};

use super::{ExtractError, write_file};

pub(crate) struct Written {
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// The shape of the frames a graph was built for; a change mid-stream rebuilds it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Shape {
    width: u32,
    height: u32,
    format: Pixel,
}

/// A libavfilter chain (`scale=…,format=…`) applied to one frame at a time, rebuilt when the
/// frames' size or pixel format changes.
pub(crate) struct Chain {
    description: String,
    graph: Option<(Shape, filter::Graph)>,
}

impl Chain {
    pub(crate) fn new(description: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            graph: None,
        }
    }

    fn graph_for(&mut self, frame: &frame::Video) -> Result<&mut filter::Graph, ExtractError> {
        let shape = Shape {
            width: frame.width(),
            height: frame.height(),
            format: frame.format(),
        };
        if self.graph.as_ref().is_none_or(|(s, _)| *s != shape) {
            let aspect = frame.aspect_ratio();
            let (sar_num, sar_den) = if aspect.numerator() > 0 && aspect.denominator() > 0 {
                (aspect.numerator(), aspect.denominator())
            } else {
                (1, 1)
            };
            let pix = shape.format.descriptor().map(|d| d.name()).ok_or_else(|| {
                ExtractError::new(ErrorCode::CorruptInput, "unknown pixel format")
            })?;
            let args = format!(
                "video_size={}x{}:pix_fmt={pix}:time_base=1/1:pixel_aspect={sar_num}/{sar_den}",
                shape.width, shape.height
            );
            let mut graph = filter::Graph::new();
            let buffer =
                filter::find("buffer").ok_or_else(|| internal("filter", "no buffer source"))?;
            let sink =
                filter::find("buffersink").ok_or_else(|| internal("filter", "no buffer sink"))?;
            graph
                .add(&buffer, "in", &args)
                .map_err(|e| internal("filter source", e))?;
            graph
                .add(&sink, "out", "")
                .map_err(|e| internal("filter sink", e))?;
            graph
                .output("in", 0)
                .and_then(|p| p.input("out", 0))
                .and_then(|p| p.parse(&self.description))
                .map_err(|e| internal("filter graph", e))?;
            graph.validate().map_err(|e| internal("filter graph", e))?;
            self.graph = Some((shape, graph));
        }
        self.graph
            .as_mut()
            .map(|(_, g)| g)
            .ok_or_else(|| internal("filter graph", "missing"))
    }

    /// The frame through the chain (one frame in, one out: the chains used here never hold
    /// frames back). Taken by value because libavfilter's buffer source takes the frame's
    /// buffers and leaves it empty: a frame needed afterwards is cloned (copied) first.
    pub(crate) fn apply(&mut self, frame: frame::Video) -> Result<frame::Video, ExtractError> {
        let mut filtered = frame::Video::empty();
        let graph = self.graph_for(&frame)?;
        let mut source = graph
            .get("in")
            .ok_or_else(|| internal("filter", "no source"))?;
        source
            .source()
            .add(&frame)
            .map_err(|e| internal("filtering", e))?;
        let mut sink = graph
            .get("out")
            .ok_or_else(|| internal("filter", "no sink"))?;
        sink.sink()
            .frame(&mut filtered)
            .map_err(|e| internal("filtering", e))?;
        Ok(filtered)
    }
}

pub(crate) struct ImageWriter {
    format: ImageFormat,
    quality: Quality,
    chain: Chain,
    encoder: Option<(u32, u32, encoder::Video)>,
    count: i64,
}

pub(crate) fn internal(what: &str, e: impl std::fmt::Display) -> ExtractError {
    ExtractError::new(ErrorCode::Internal, format!("{what}: {e}"))
}

impl ImageWriter {
    pub(crate) fn new(
        format: ImageFormat,
        quality: Quality,
        max_width: Option<u32>,
        rotation: u32,
    ) -> Self {
        Self {
            format,
            quality,
            chain: Chain::new(chain(format, max_width, rotation)),
            encoder: None,
            count: 0,
        }
    }

    fn encoder_for(
        &mut self,
        width: u32,
        height: u32,
        format: Pixel,
    ) -> Result<&mut encoder::Video, ExtractError> {
        if self
            .encoder
            .as_ref()
            .is_none_or(|(w, h, _)| (*w, *h) != (width, height))
        {
            let codec = match self.format {
                ImageFormat::Jpg => encoder::find(codec::Id::MJPEG),
                ImageFormat::Png => encoder::find(codec::Id::PNG),
                // `libwebp_anim` also claims WebP but holds frames back for an animation.
                ImageFormat::Webp => encoder::find_by_name("libwebp"),
            };
            let codec = codec.ok_or_else(|| {
                internal(
                    "image encoder",
                    format!("this FFmpeg has no {} encoder", self.format),
                )
            })?;
            let mut video = codec::context::Context::new_with_codec(codec)
                .encoder()
                .video()
                .map_err(|e| internal("image encoder", e))?;
            video.set_width(width);
            video.set_height(height);
            video.set_format(format);
            video.set_time_base((1, 25));
            let mut options = Dictionary::new();
            match self.format {
                ImageFormat::Jpg => {
                    // A fixed quantiser, as `-q:v N`: size and quality independent of position.
                    let q = self.quality.jpeg_qscale().to_string();
                    options.set("qmin", &q);
                    options.set("qmax", &q);
                    options.set("flags", "+qscale");
                }
                ImageFormat::Webp => options.set("quality", &self.quality.get().to_string()),
                ImageFormat::Png => {}
            }
            let opened = video
                .open_with(options)
                .map_err(|e| internal("opening the image encoder", e))?;
            self.encoder = Some((width, height, opened));
        }
        self.encoder
            .as_mut()
            .map(|(_, _, e)| e)
            .ok_or_else(|| internal("image encoder", "missing"))
    }

    /// Writes the frame as an image file; the frame is used up (see [`Chain::apply`]).
    pub(crate) fn write(
        &mut self,
        frame: frame::Video,
        path: &Path,
    ) -> Result<Written, ExtractError> {
        let mut filtered = self.chain.apply(frame)?;
        let (width, height, pixel) = (filtered.width(), filtered.height(), filtered.format());
        self.count += 1;
        filtered.set_pts(Some(self.count));
        let encoder = self.encoder_for(width, height, pixel)?;
        encoder
            .send_frame(&filtered)
            .map_err(|e| internal("encoding", e))?;
        let mut packet = Packet::empty();
        encoder
            .receive_packet(&mut packet)
            .map_err(|e| internal("encoding", e))?;
        let data = packet.data().unwrap_or_default();
        write_file(path, data)?;
        Ok(Written {
            width,
            height,
            bytes: data.len() as u64,
        })
    }
}

/// The filter chain after the source: rotate for display, then bound the width, then convert.
fn chain(format: ImageFormat, max_width: Option<u32>, rotation: u32) -> String {
    let mut steps: Vec<String> = Vec::new();
    if let Some(turn) = rotate(rotation) {
        steps.push(turn.into());
    }
    if let Some(max) = max_width {
        // Even heights keep 4:2:0 encoders happy; never upscale.
        steps.push(format!("scale=w='min(iw,{max})':h=-2:flags=bicubic"));
    }
    steps.push(format!("format={}", pixel_format(format)));
    steps.join(",")
}

/// The filters that turn a picture stored turned by `rotation` (clockwise degrees) upright.
pub(crate) fn rotate(rotation: u32) -> Option<&'static str> {
    match rotation {
        90 => Some("transpose=clock"),
        180 => Some("hflip,vflip"),
        270 => Some("transpose=cclock"),
        _ => None,
    }
}

/// The pixel format each encoder is fed.
fn pixel_format(format: ImageFormat) -> &'static str {
    match format {
        // Full-range 4:2:0, what the MJPEG encoder wants.
        ImageFormat::Jpg => "yuvj420p",
        ImageFormat::Png => "rgb24",
        ImageFormat::Webp => "yuv420p",
    }
}
