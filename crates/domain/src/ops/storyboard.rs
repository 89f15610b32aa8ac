//! `storyboard`: a frame every N seconds, scaled to a tile and laid out on sprite sheets, with a
//! WebVTT file mapping each time range to its tile (`sprite.jpg#xywh=x,y,w,h`): what players
//! load for scrubbing previews.
//!
//! The work is bounded before anything runs: at most [`MAX_TILES_PER_SPRITE`] tiles on a sheet,
//! sheets at most [`MAX_SPRITE_SIDE`] pixels a side, at most [`MAX_SPRITES`] sheets. A video
//! that would need more sheets than `max_sprites` is refused when its duration is known
//! (`too-many-frames`), never cut short.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OperationInfo, Problems, fields::Reader};
use crate::{FrameInterval, FrameMode, ImageFormat, Quality};

pub(super) const INFO: OperationInfo = OperationInfo {
    name: "storyboard",
    summary: "a tile every `every` seconds on sprite sheets, with a WebVTT file mapping time \
              ranges to `sprite#xywh=x,y,w,h` for scrubbing previews",
    inputs: 1,
    max_inputs: 1,
    // Also `sprite-002`, … when the tiles need more than one sheet.
    artefacts: &["vtt", "sprite-001"],
};

/// Most tiles on one sheet (`columns * rows`).
pub const MAX_TILES_PER_SPRITE: u32 = 400;
/// Most sheets one storyboard may have.
pub const MAX_SPRITES: u32 = 100;
/// Widest and tallest sheet, in pixels: every image encoder takes it (WebP stops at 16383).
pub const MAX_SPRITE_SIDE: u32 = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoryboardOptions {
    /// Seconds between tiles; tile `i` stands for `[i * every, (i + 1) * every)`.
    pub every: FrameInterval,
    /// Tile width in pixels (even: 4:2:0 pictures are pasted whole).
    pub width: u32,
    /// Tile height in pixels (even); `None` follows the video's display aspect ratio. A picture
    /// of another aspect is fitted inside the tile, with black bars.
    pub height: Option<u32>,
    /// Tiles per row of a sheet.
    pub columns: u32,
    /// Rows of a full sheet; the last sheet has only the rows it needs.
    pub rows: u32,
    /// The most sheets a video may need before it is refused.
    pub max_sprites: u32,
    /// `keyframe` is much cheaper and, for scrubbing, usually close enough.
    pub mode: FrameMode,
    pub format: ImageFormat,
    pub quality: Quality,
}

impl Default for StoryboardOptions {
    fn default() -> Self {
        Self {
            every: FrameInterval::from_seconds(5.0).unwrap_or_default(),
            width: 160,
            height: None,
            columns: 10,
            rows: 10,
            max_sprites: 20,
            mode: FrameMode::Exact,
            format: ImageFormat::Jpg,
            // Sheets are downloaded while scrubbing: smaller than a frame's default (95).
            quality: Quality::new(80).unwrap_or_default(),
        }
    }
}

impl StoryboardOptions {
    pub fn tiles_per_sprite(&self) -> u32 {
        self.columns * self.rows
    }
}

pub(super) fn parse(
    object: &Map<String, Value>,
    path: &str,
) -> Result<StoryboardOptions, Problems> {
    let mut reader = Reader::new(object, path);
    let d = StoryboardOptions::default();
    let every = reader.parsed::<FrameInterval>(
        "every",
        Some(|n| FrameInterval::from_seconds(n).map_err(|e| e.to_string())),
    );
    let even = |reader: &mut Reader<'_>, key: &'static str| {
        let value = reader.whole(key, 16..=u64::from(MAX_SPRITE_SIDE))?;
        if value % 2 == 1 {
            reader.fail(key, "must be even (4:2:0 pictures are pasted whole)");
            return None;
        }
        Some(value as u32)
    };
    let width = even(&mut reader, "width");
    let height = even(&mut reader, "height");
    let columns = reader.whole("columns", 1..=64).map(|n| n as u32);
    let rows = reader.whole("rows", 1..=64).map(|n| n as u32);
    let max_sprites = reader
        .whole("max_sprites", 1..=u64::from(MAX_SPRITES))
        .map(|n| n as u32);
    let mode = reader.parsed::<FrameMode>("mode", None);
    let format = reader.parsed::<ImageFormat>("format", None);
    let quality = reader
        .whole("quality", 1..=100)
        .and_then(|q| Quality::new(q as u8).ok());
    let options = StoryboardOptions {
        every: every.unwrap_or(d.every),
        width: width.unwrap_or(d.width),
        height,
        columns: columns.unwrap_or(d.columns),
        rows: rows.unwrap_or(d.rows),
        max_sprites: max_sprites.unwrap_or(d.max_sprites),
        mode: mode.unwrap_or(d.mode),
        format: format.unwrap_or(d.format),
        quality: quality.unwrap_or(d.quality),
    };
    // The sheet's bounds, reported at the option given that breaks them.
    if options.columns * options.width > MAX_SPRITE_SIDE {
        let key = if columns.is_some() {
            "columns"
        } else {
            "width"
        };
        reader.fail(
            key,
            format!(
                "{} columns of {} px make a sheet wider than {MAX_SPRITE_SIDE} px",
                options.columns, options.width
            ),
        );
    }
    if let Some(height) = options.height
        && options.rows * height > MAX_SPRITE_SIDE
    {
        let key = if rows.is_some() { "rows" } else { "height" };
        reader.fail(
            key,
            format!(
                "{} rows of {height} px make a sheet taller than {MAX_SPRITE_SIDE} px",
                options.rows
            ),
        );
    }
    if options.tiles_per_sprite() > MAX_TILES_PER_SPRITE {
        let key = if rows.is_some() { "rows" } else { "columns" };
        reader.fail(
            key,
            format!(
                "{} x {} is {} tiles on a sheet; at most {MAX_TILES_PER_SPRITE}",
                options.columns,
                options.rows,
                options.tiles_per_sprite()
            ),
        );
    }
    reader.finish().or(options)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Operation;

    fn parse_json(value: Value) -> Result<StoryboardOptions, Problems> {
        parse(value.as_object().expect("object"), "o")
    }

    #[test]
    fn defaults_are_ten_by_ten_tiles_of_160_px_every_five_seconds() {
        let options = parse_json(json!({})).expect("valid");
        assert_eq!(options, StoryboardOptions::default());
        assert_eq!(options.every.seconds(), 5.0);
        assert_eq!((options.width, options.height), (160, None));
        assert_eq!(options.tiles_per_sprite(), 100);
    }

    #[test]
    fn tiles_take_sizes_layouts_and_intervals() {
        let options = parse_json(json!({
            "every": "2s", "width": 240, "height": 136, "columns": 5, "rows": 4,
            "max_sprites": 3, "mode": "keyframe", "format": "webp", "quality": 60
        }))
        .expect("valid");
        assert_eq!(options.every.seconds(), 2.0);
        assert_eq!((options.width, options.height), (240, Some(136)));
        assert_eq!(
            (options.columns, options.rows, options.max_sprites),
            (5, 4, 3)
        );
        assert_eq!(options.mode, FrameMode::Keyframe);
        assert_eq!(options.format, ImageFormat::Webp);
    }

    #[test]
    fn work_limits_are_refused_at_their_fields() {
        let fields = parse_json(json!({
            "columns": 30, "rows": 20, "max_sprites": 101, "width": 161, "every": 0
        }))
        .expect_err("over the limits")
        .into_fields();
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            ["o.every", "o.max_sprites", "o.rows", "o.width"]
        );
        assert!(fields["o.rows"].contains("600 tiles"), "{fields:?}");
        assert!(fields["o.width"].contains("even"), "{fields:?}");

        let fields = parse_json(json!({"columns": 60, "width": 320}))
            .expect_err("too wide")
            .into_fields();
        assert!(fields["o.columns"].contains("8192"), "{fields:?}");
        let fields = parse_json(json!({"rows": 40, "columns": 10, "height": 400}))
            .expect_err("too tall")
            .into_fields();
        assert!(fields["o.rows"].contains("taller"), "{fields:?}");
    }

    #[test]
    fn options_round_trip_through_the_operation() {
        let op =
            Operation::parse("storyboard", &json!({"every": 3, "height": 90}), "o").expect("valid");
        assert_eq!(op.info().artefacts, ["vtt", "sprite-001"]);
        let again = Operation::parse(op.name(), &op.options(), "o").expect("valid");
        assert_eq!(op, again);
    }
}
