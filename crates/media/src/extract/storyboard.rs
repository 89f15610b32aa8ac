//! Storyboard sheets: each target's frame scaled into a tile (fitted, black bars, upright) and
//! pasted onto a sheet in memory; a full sheet (or the last) is encoded once. Nothing is
//! written per tile, and no tile is compressed twice.
//!
//! Sheets are composed in full-range 4:2:0 (what the JPEG encoder takes as it is): with even
//! tile sizes every tile's chroma lands on whole chroma samples.

use ffmpeg_next::{format::Pixel, frame};
use serde::{Deserialize, Serialize};
use vidsnap_domain::{FrameMode, ImageFormat, Quality};

use super::{
    Event, ExtractError, Targets, image, image::Chain, image::ImageWriter, round_micros,
    source::Source,
};

/// What the parent asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoryboardSpec {
    pub input: std::path::PathBuf,
    pub out_dir: std::path::PathBuf,
    pub targets: Targets,
    pub mode: FrameMode,
    pub format: ImageFormat,
    pub quality: Quality,
    /// Clockwise degrees the picture is turned for display (from the probe).
    pub rotation: u32,
    /// Tile size, even; no height follows the first frame's display aspect ratio.
    pub tile_width: u32,
    pub tile_height: Option<u32>,
    pub columns: u32,
    pub rows: u32,
    /// The tallest a tile may be when its height follows the video (a sheet's bound / rows).
    pub max_tile_height: u32,
    /// Sheet `n` (from 1) is written as `{file_prefix}{n:03}.{ext}`.
    pub file_prefix: String,
}

/// One tile on a sheet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TileRecord {
    /// The target time, seconds from the start: the tile stands for `[requested_time, next)`.
    pub requested_time: f64,
    /// The presentation time of the frame shown.
    pub actual_time: f64,
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// One sheet written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpriteRecord {
    /// From 1.
    pub index: usize,
    pub file: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub tiles: Vec<TileRecord>,
}

/// The sheet being filled.
struct Sheet {
    picture: frame::Video,
    tiles: Vec<TileRecord>,
}

/// Black in full-range YUV.
const BLACK: [u8; 3] = [0, 128, 128];

pub(crate) fn run(
    spec: &StoryboardSpec,
    emit: &mut dyn FnMut(Event) -> Result<(), ExtractError>,
) -> Result<(), ExtractError> {
    let mut source = Source::open(&spec.input, spec.mode)?;
    let mut writer = ImageWriter::new(spec.format, spec.quality, None, 0);
    let total = spec.targets.len();
    let per_sheet = u64::from(spec.columns * spec.rows);
    // The tile chain, built once the first frame says what the picture looks like.
    let mut tiler: Option<Tiler> = None;
    let mut sheet: Option<Sheet> = None;
    let mut written = 0usize;
    for (index, target) in spec.targets.times().enumerate() {
        let Some(shown) = source.frame_at(target)? else {
            return Err(ExtractError::new(
                vidsnap_domain::ErrorCode::CorruptInput,
                "no frame of the video could be decoded",
            ));
        };
        let tiler = match &mut tiler {
            Some(tiler) => tiler,
            None => tiler.insert(Tiler::new(spec, &shown.frame)),
        };
        let (width, height) = (tiler.width, tiler.height);
        let position = index as u64 % per_sheet;
        let current = match &mut sheet {
            Some(current) => current,
            None => {
                let first = index as u64;
                let here = (total - first).min(per_sheet);
                let columns = here.min(u64::from(spec.columns)) as u32;
                let rows = here.div_ceil(u64::from(spec.columns)) as u32;
                sheet.insert(Sheet {
                    picture: blank(columns * width, rows * height),
                    tiles: Vec::new(),
                })
            }
        };
        let (x, y) = (
            (position % u64::from(spec.columns)) as u32 * width,
            (position / u64::from(spec.columns)) as u32 * height,
        );
        let tile = tiler.chain.apply(shown.frame)?;
        paste(&tile, &mut current.picture, x, y);
        current.tiles.push(TileRecord {
            requested_time: target,
            actual_time: round_micros(shown.time),
            x,
            y,
            width,
            height,
        });
        emit(Event::Progress { time: target })?;
        // A full sheet, or the last one, is encoded.
        if (position + 1 == per_sheet || index as u64 + 1 == total)
            && let Some(full) = sheet.take()
        {
            written += 1;
            let file = format!(
                "{}{written:03}.{}",
                spec.file_prefix,
                spec.format.extension()
            );
            let out = writer.write(full.picture, &spec.out_dir.join(&file))?;
            emit(Event::Sprite(SpriteRecord {
                index: written,
                file,
                width: out.width,
                height: out.height,
                bytes: out.bytes,
                tiles: full.tiles,
            }))?;
        }
    }
    Ok(())
}

/// Turns frames into tiles of one size.
struct Tiler {
    width: u32,
    height: u32,
    chain: Chain,
}

impl Tiler {
    /// Sized from the first frame: its display size (pixel aspect ratio and rotation applied)
    /// fitted into the tile, the rest black.
    fn new(spec: &StoryboardSpec, first: &frame::Video) -> Self {
        let aspect = first.aspect_ratio();
        let sar = if aspect.numerator() > 0 && aspect.denominator() > 0 {
            f64::from(aspect.numerator()) / f64::from(aspect.denominator())
        } else {
            1.0
        };
        let (mut shown_w, mut shown_h) = (
            f64::from(first.width()) * sar,
            f64::from(first.height().max(1)),
        );
        if spec.rotation % 180 == 90 {
            std::mem::swap(&mut shown_w, &mut shown_h);
        }
        let width = spec.tile_width;
        let height = spec.tile_height.unwrap_or_else(|| {
            even(f64::from(width) * shown_h / shown_w.max(1.0))
                .clamp(2, (spec.max_tile_height & !1).max(2))
        });
        // The picture's size inside the tile: as large as fits, even.
        let scale = (f64::from(width) / shown_w).min(f64::from(height) / shown_h);
        let inner_w = even(shown_w * scale).clamp(2, width);
        let inner_h = even(shown_h * scale).clamp(2, height);
        let mut steps: Vec<String> = Vec::new();
        if let Some(turn) = image::rotate(spec.rotation) {
            steps.push(turn.into());
        }
        steps.push(format!("scale={inner_w}:{inner_h}:flags=bicubic"));
        steps.push(format!(
            "pad={width}:{height}:{}:{}:color=black",
            (width - inner_w) / 2 / 2 * 2,
            (height - inner_h) / 2 / 2 * 2
        ));
        steps.push("setsar=1,format=yuvj420p".into());
        Self {
            width,
            height,
            chain: Chain::new(steps.join(",")),
        }
    }
}

/// The nearest even whole number, at least 2.
fn even(value: f64) -> u32 {
    ((value / 2.0).round() as u32 * 2).max(2)
}

/// A black full-range 4:2:0 picture.
fn blank(width: u32, height: u32) -> frame::Video {
    let mut picture = frame::Video::new(Pixel::YUVJ420P, width, height);
    for (plane, value) in BLACK.into_iter().enumerate() {
        picture.data_mut(plane).fill(value);
    }
    picture
}

/// Copies `tile` (full-range 4:2:0, even size) onto `sheet` at an even `(x, y)`.
fn paste(tile: &frame::Video, sheet: &mut frame::Video, x: u32, y: u32) {
    for plane in 0..3 {
        let shift = usize::from(plane > 0);
        let (width, height) = (
            (tile.width() as usize) >> shift,
            (tile.height() as usize) >> shift,
        );
        let (x, y) = ((x as usize) >> shift, (y as usize) >> shift);
        let (from_stride, to_stride) = (tile.stride(plane), sheet.stride(plane));
        let from = tile.data(plane);
        let to = sheet.data_mut(plane);
        for row in 0..height {
            let source = &from[row * from_stride..row * from_stride + width];
            let start = (y + row) * to_stride + x;
            to[start..start + width].copy_from_slice(source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_to_even_numbers() {
        assert_eq!(even(90.0), 90);
        assert_eq!(even(90.9), 90);
        assert_eq!(even(91.1), 92);
        assert_eq!(even(0.3), 2);
    }
}
