//! `storyboard`: the extractor child pastes a tile every `every` seconds onto sprite sheets
//! (`sprite-001.jpg`, …); this side checks the work is within bounds first, then writes the
//! WebVTT file players read for scrubbing previews:
//!
//! ```text
//! WEBVTT
//!
//! 00:00:00.000 --> 00:00:05.000
//! holiday-sprite-001.jpg#xywh=0,0,160,90
//! ```
//!
//! Tile `i` stands for `[i * every, (i + 1) * every)` and the last one until the duration, so
//! the cues cover the video without gaps or overlaps. The sheets are referred to by their stored
//! names (`{stem}-sprite-001.jpg`), relative to the VTT, beside which they are stored.

use std::{fmt::Write as _, path::Path};

use serde_json::json;
use vidsnap_domain::{
    ErrorCode, ImageFormat,
    ops::{MAX_SPRITE_SIDE, StoryboardOptions},
    target_times,
};

use super::{OpInput, OpOutput, Produced, stem};
use crate::{
    MediaEngine, MediaError, Progress,
    extract::{Event, Job, SpriteRecord, StoryboardSpec, Targets, TileRecord},
    frames::{Percent, Source},
};

const VTT_TYPE: &str = "text/vtt";

pub(super) async fn run(
    engine: &MediaEngine,
    options: &StoryboardOptions,
    input: &OpInput,
    work: &Path,
    progress: &dyn Progress,
) -> Result<OpOutput, MediaError> {
    let probe = engine.accept(&input.path, &input.file_name).await?;
    let duration = probe.duration.unwrap_or(0.0);
    let tiles = engine.check_interval(&probe, options.every)?;
    let per_sprite = u64::from(options.tiles_per_sprite());
    let sprites = tiles.div_ceil(per_sprite);
    if sprites > u64::from(options.max_sprites) {
        return Err(MediaError::rejected(
            ErrorCode::TooManyFrames,
            format!(
                "a tile every {} on a {duration:.3} s video is {tiles} tiles: {sprites} sheets of \
                 {} x {}; at most {} (max_sprites): choose a longer interval, more columns or \
                 rows, or more sheets",
                options.every, options.columns, options.rows, options.max_sprites
            ),
        ));
    }
    let total = usize::try_from(tiles).unwrap_or(usize::MAX);
    progress.started(total);
    let mut percent = Percent::new(progress, total);

    let job = Job::Storyboard(StoryboardSpec {
        input: std::path::absolute(&input.path)
            .map_err(|e| MediaError::io("resolving", &input.path, e))?,
        out_dir: work.to_path_buf(),
        targets: Targets::Every(target_times(duration, options.every)),
        mode: options.mode,
        format: options.format,
        quality: options.quality,
        rotation: probe.video().and_then(|v| v.rotation).unwrap_or(0),
        tile_width: options.width,
        tile_height: options.height,
        columns: options.columns,
        rows: options.rows,
        max_tile_height: MAX_SPRITE_SIDE / options.rows,
        file_prefix: "sprite-".into(),
    });
    let mut child = engine.start_job(&job, duration).await?;
    let (mut sheets, mut done) = (Vec::new(), 0);
    while let Some(event) = child.next_event().await? {
        match event {
            Event::Progress { .. } => {
                done += 1;
                percent.frames_done(done);
            }
            Event::Sprite(sheet) => sheets.push(sheet),
            _ => {}
        }
    }
    child.finish().await?;

    let stem = stem(&input.file_name);
    let named = |sheet: &SpriteRecord| format!("{stem}-{}", sheet.file);
    let vtt = webvtt(&sheets, duration, options.every.seconds(), |sheet| {
        url_path_segment(&named(sheet))
    });
    let vtt_path = work.join("storyboard.vtt");
    tokio::fs::write(&vtt_path, vtt)
        .await
        .map_err(|e| MediaError::io("writing", &vtt_path, e))?;

    let image_type = options.format.mime_type();
    let mut produced: Vec<Produced> = sheets
        .iter()
        .map(|sheet| Produced {
            name: sheet_name(sheet, options.format),
            path: work.join(&sheet.file),
            file_name: named(sheet),
            content_type: image_type.into(),
        })
        .collect();
    // Last: the map is what a player loads, and every sheet it names is stored before it.
    produced.push(Produced {
        name: "vtt".into(),
        path: vtt_path,
        file_name: format!("{stem}-storyboard.vtt"),
        content_type: VTT_TYPE.into(),
    });
    progress.percent(100);
    let (tile_width, tile_height) = sheets
        .first()
        .and_then(|sheet| sheet.tiles.first())
        .map_or((options.width, options.height.unwrap_or(0)), |tile| {
            (tile.width, tile.height)
        });
    Ok(OpOutput {
        produced,
        result: Some(json!({
            "tiles": tiles,
            "sprites": sheets.len(),
            "every": options.every.seconds(),
            "tile_width": tile_width,
            "tile_height": tile_height,
            "columns": options.columns,
            "rows": options.rows,
            "probe": Source { file_name: input.file_name.clone(), probe },
        })),
    })
}

/// `sprite-001`: the artefact name of a sheet, its file name without the extension.
fn sheet_name(sheet: &SpriteRecord, format: ImageFormat) -> String {
    sheet
        .file
        .strip_suffix(&format!(".{}", format.extension()))
        .unwrap_or(&sheet.file)
        .to_owned()
}

/// The WebVTT map: one cue per tile, from its time to the next tile's (the last to the end).
fn webvtt(
    sheets: &[SpriteRecord],
    duration: f64,
    every: f64,
    url: impl Fn(&SpriteRecord) -> String,
) -> String {
    let mut vtt = String::from("WEBVTT\n");
    let tiles: Vec<(&SpriteRecord, &TileRecord)> = sheets
        .iter()
        .flat_map(|sheet| sheet.tiles.iter().map(move |tile| (sheet, tile)))
        .collect();
    for (i, (sheet, tile)) in tiles.iter().enumerate() {
        let start = tile.requested_time;
        let end = match tiles.get(i + 1) {
            Some((_, next)) => next.requested_time,
            // A video shorter than stated (or with no duration) still gets a cue that ends.
            None if duration > start => duration,
            None => start + every,
        };
        let _ = write!(
            vtt,
            "\n{} --> {}\n{}#xywh={},{},{},{}\n",
            timestamp(start),
            timestamp(end),
            url(sheet),
            tile.x,
            tile.y,
            tile.width,
            tile.height
        );
    }
    vtt
}

/// `HH:MM:SS.mmm`, WebVTT's cue timing.
fn timestamp(seconds: f64) -> String {
    let millis = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1000 % 60,
        millis % 1000
    )
}

/// A file name as one relative URL path segment: unreserved characters kept, every other byte
/// percent-encoded (a space, `#`, `?` or `%` in a video's name must not change the URL).
fn url_path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet(index: usize, times: &[f64]) -> SpriteRecord {
        SpriteRecord {
            index,
            file: format!("sprite-{index:03}.jpg"),
            width: 320,
            height: 90,
            bytes: 1,
            tiles: times
                .iter()
                .enumerate()
                .map(|(i, t)| TileRecord {
                    requested_time: *t,
                    actual_time: *t,
                    x: i as u32 * 160,
                    y: 0,
                    width: 160,
                    height: 90,
                })
                .collect(),
        }
    }

    #[test]
    fn cues_run_from_tile_to_tile_and_the_last_to_the_end() {
        let sheets = [sheet(1, &[0.0, 5.0]), sheet(2, &[10.0])];
        let vtt = webvtt(&sheets, 12.34, 5.0, |s| s.file.clone());
        assert_eq!(
            vtt,
            "WEBVTT\n\
             \n00:00:00.000 --> 00:00:05.000\nsprite-001.jpg#xywh=0,0,160,90\n\
             \n00:00:05.000 --> 00:00:10.000\nsprite-001.jpg#xywh=160,0,160,90\n\
             \n00:00:10.000 --> 00:00:12.340\nsprite-002.jpg#xywh=0,0,160,90\n"
        );
        // No duration: the last tile lasts one interval.
        let vtt = webvtt(&[sheet(1, &[0.0])], 0.0, 5.0, |s| s.file.clone());
        assert!(vtt.contains("00:00:00.000 --> 00:00:05.000"), "{vtt}");
    }

    #[test]
    fn timestamps_carry_hours() {
        assert_eq!(timestamp(3723.0456), "01:02:03.046");
        assert_eq!(timestamp(0.0), "00:00:00.000");
    }

    #[test]
    fn names_are_escaped_as_url_segments() {
        assert_eq!(
            url_path_segment("My Holiday #2-sprite-001.jpg"),
            "My%20Holiday%20%232-sprite-001.jpg"
        );
        assert_eq!(url_path_segment("été.jpg"), "%C3%A9t%C3%A9.jpg");
        assert_eq!(
            sheet_name(&sheet(3, &[0.0]), ImageFormat::Jpg),
            "sprite-003"
        );
    }
}
