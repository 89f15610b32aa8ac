//! What a picture is like, measured on its pixels: how far it is from the previous frame (the
//! scene score), and how bright, contrasted and sharp it is (a poster candidate's measures).
//!
//! The arithmetic works on [`Plane`]s (8-bit samples, rows `stride` bytes apart) and is pure,
//! so it is tested here on made-up pictures; the frame-level types feed it decoded frames.

use ffmpeg_next::{format::Pixel, frame};
use serde::{Deserialize, Serialize};

use super::{ExtractError, image::Chain};

/// One plane of 8-bit samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub width: usize,
    pub height: usize,
}

impl<'a> Plane<'a> {
    fn rows(self) -> impl Iterator<Item = &'a [u8]> {
        self.data
            .chunks(self.stride.max(1))
            .take(self.height)
            .map(move |row| &row[..self.width.min(row.len())])
    }

    fn samples(self) -> usize {
        self.width * self.height
    }
}

/// The sum of absolute differences of two planes of one size.
pub(crate) fn sad(a: Plane<'_>, b: Plane<'_>) -> u64 {
    a.rows()
        .zip(b.rows())
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(p, q)| u32::from(p.abs_diff(*q)))
                .sum::<u32>() as u64
        })
        .sum()
}

/// ffmpeg's scene score (`select`'s `scene`, `scdet`): with `mafd` the mean absolute frame
/// difference (0-255) to the previous frame and `previous_mafd` the one before, a cut is a
/// frame far from the previous one *and* a jump from the difference before it, so steady motion
/// scores low: `min(mafd, |mafd - previous_mafd|) / 100`, within 0-1.
pub(crate) fn scene_score(mafd: f64, previous_mafd: f64) -> f64 {
    (mafd.min((mafd - previous_mafd).abs()) / 100.0).clamp(0.0, 1.0)
}

/// Mean of the samples, 0-255.
pub(crate) fn mean(plane: Plane<'_>) -> f64 {
    let sum: u64 = plane
        .rows()
        .map(|row| row.iter().map(|&p| u64::from(p)).sum::<u64>())
        .sum();
    sum as f64 / plane.samples().max(1) as f64
}

/// Standard deviation of the samples, 0-127.5.
pub(crate) fn std_dev(plane: Plane<'_>) -> f64 {
    let m = mean(plane);
    let squares: f64 = plane
        .rows()
        .map(|row| row.iter().map(|&p| (f64::from(p) - m).powi(2)).sum::<f64>())
        .sum();
    (squares / plane.samples().max(1) as f64).sqrt()
}

/// The variance of the 4-neighbour Laplacian over the inner samples: edges make it large, blur
/// flattens it (the usual focus measure). 0 for a picture under 3x3.
pub(crate) fn laplacian_variance(plane: Plane<'_>) -> f64 {
    if plane.width < 3 || plane.height < 3 {
        return 0.0;
    }
    let rows: Vec<&[u8]> = plane.rows().collect();
    let (mut sum, mut squares, mut count) = (0.0, 0.0, 0usize);
    for y in 1..rows.len() - 1 {
        let (above, row, below) = (rows[y - 1], rows[y], rows[y + 1]);
        for x in 1..plane.width - 1 {
            let l = i32::from(row[x - 1]) + i32::from(row[x + 1]) + i32::from(above[x])
                - 4 * i32::from(row[x])
                + i32::from(below[x]);
            let l = f64::from(l);
            sum += l;
            squares += l * l;
            count += 1;
        }
    }
    let n = count.max(1) as f64;
    (squares / n - (sum / n).powi(2)).max(0.0)
}

/// The planes of a frame in a pixel format the scene score reads directly (8-bit planar YUV
/// or grey, as ffmpeg's `select` does), or `None` for any other format.
fn planes(frame: &frame::Video) -> Option<Vec<Plane<'_>>> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let chroma = match frame.format() {
        Pixel::YUV420P | Pixel::YUVJ420P => Some((w.div_ceil(2), h.div_ceil(2))),
        Pixel::YUV422P | Pixel::YUVJ422P => Some((w.div_ceil(2), h)),
        Pixel::YUV444P | Pixel::YUVJ444P => Some((w, h)),
        Pixel::GRAY8 => None,
        _ => return None,
    };
    let plane = |index: usize, width: usize, height: usize| Plane {
        data: frame.data(index),
        stride: frame.stride(index),
        width,
        height,
    };
    let mut planes = vec![plane(0, w, h)];
    if let Some((cw, ch)) = chroma {
        planes.extend([plane(1, cw, ch), plane(2, cw, ch)]);
    }
    Some(planes)
}

/// Scores each frame against the one before, as ffmpeg's `select='gt(scene,T)'` does: on
/// every plane at full size. Frames in other pixel formats (10-bit, packed RGB, NV12) are
/// converted to 8-bit 4:2:0 first, and the converted previous frame kept here.
pub(crate) struct SceneScorer {
    previous_mafd: f64,
    convert: Chain,
    converted: Option<frame::Video>,
}

impl SceneScorer {
    pub(crate) fn new() -> Self {
        Self {
            previous_mafd: 0.0,
            convert: Chain::new("format=yuv420p"),
            converted: None,
        }
    }

    /// `current`'s score against `previous`, the frame before it (0 for the first frame, and
    /// after a change of size or format). The caller keeps the frames: scoring copies nothing
    /// in the formats read directly.
    pub(crate) fn score(
        &mut self,
        previous: Option<&frame::Video>,
        current: &frame::Video,
    ) -> Result<f64, ExtractError> {
        if planes(current).is_some() {
            self.converted = None;
            return Ok(match previous {
                Some(previous) => against(&mut self.previous_mafd, previous, current),
                None => 0.0,
            });
        }
        // The conversion uses up its input (see `Chain::apply`): it gets a copy.
        let converted = self.convert.apply(current.clone())?;
        let score = match (&self.converted, previous) {
            (Some(before), Some(_)) => against(&mut self.previous_mafd, before, &converted),
            _ => 0.0,
        };
        self.converted = Some(converted);
        Ok(score)
    }
}

/// The scene score of `current` against `previous`, moving `previous_mafd` on.
fn against(previous_mafd: &mut f64, previous: &frame::Video, current: &frame::Video) -> f64 {
    let same_shape = (previous.width(), previous.height(), previous.format())
        == (current.width(), current.height(), current.format());
    let (Some(before), Some(now)) = (planes(previous), planes(current)) else {
        return 0.0;
    };
    if !same_shape {
        return 0.0;
    }
    let (total, count) = before
        .iter()
        .zip(&now)
        .fold((0u64, 0usize), |(total, count), (a, b)| {
            (total + sad(*a, *b), count + b.samples())
        });
    let mafd = total as f64 / count.max(1) as f64;
    let score = scene_score(mafd, *previous_mafd);
    *previous_mafd = mafd;
    score
}

/// A poster candidate's measures, from a grey copy 320 pixels wide (so that sharpness compares
/// across candidates whatever the video's size).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameMetrics {
    /// Mean brightness, 0 (black) to 1 (white).
    pub brightness: f64,
    /// Standard deviation of brightness, 0 (one flat colour) to 0.5.
    pub contrast: f64,
    /// Variance of the Laplacian of brightness (0-255 scale): higher is sharper; blur and flat
    /// pictures are low.
    pub sharpness: f64,
    /// Mean absolute difference to the next frame, 0-1: high inside fades, dissolves and fast
    /// motion.
    pub change: f64,
    /// How much the mean brightness moves to the next frame, 0-1: a fade moves it, motion
    /// mostly does not.
    pub fade: f64,
}

/// Measures candidates, each against the frame after it.
pub(crate) struct Meter {
    grey: Chain,
}

/// The width measures are taken at.
const METER_WIDTH: u32 = 320;

impl Meter {
    pub(crate) fn new() -> Self {
        Self {
            grey: Chain::new(format!("scale={METER_WIDTH}:-2:flags=area,format=gray")),
        }
    }

    /// The measures of `frame` (against `next`, the frame after it); both are used up.
    pub(crate) fn measure(
        &mut self,
        frame: frame::Video,
        next: Option<frame::Video>,
    ) -> Result<FrameMetrics, ExtractError> {
        let grey = self.grey.apply(frame)?;
        let this = grey_plane(&grey);
        let brightness = mean(this) / 255.0;
        let (change, fade) = match next {
            Some(next) => {
                let next_grey = self.grey.apply(next)?;
                let that = grey_plane(&next_grey);
                if (that.width, that.height) == (this.width, this.height) {
                    let mafd = sad(this, that) as f64 / this.samples().max(1) as f64;
                    (mafd / 255.0, (mean(that) / 255.0 - brightness).abs())
                } else {
                    (0.0, 0.0)
                }
            }
            None => (0.0, 0.0),
        };
        Ok(FrameMetrics {
            brightness,
            contrast: std_dev(this) / 255.0,
            sharpness: laplacian_variance(this),
            change,
            fade,
        })
    }
}

fn grey_plane(frame: &frame::Video) -> Plane<'_> {
    Plane {
        data: frame.data(0),
        stride: frame.stride(0),
        width: frame.width() as usize,
        height: frame.height() as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(data: &[u8], width: usize) -> Plane<'_> {
        Plane {
            data,
            stride: width,
            width,
            height: data.len() / width,
        }
    }

    #[test]
    fn sad_reads_only_the_visible_part_of_each_row() {
        // Two rows of 3 samples, each row padded to a stride of 4 with garbage.
        let a = [1, 2, 3, 99, 4, 5, 6, 99];
        let b = [1, 0, 3, 0, 0, 5, 9, 0];
        let (a, b) = (
            Plane {
                data: &a,
                stride: 4,
                width: 3,
                height: 2,
            },
            Plane {
                data: &b,
                stride: 4,
                width: 3,
                height: 2,
            },
        );
        assert_eq!(sad(a, b), 2 + 4 + 3);
        assert_eq!(mean(a), 3.5);
    }

    #[test]
    fn the_scene_score_is_ffmpegs() {
        // A cut after stillness: the whole difference.
        assert_eq!(scene_score(60.0, 0.0), 0.6);
        // Steady motion: as different as the frame before was, so no cut.
        assert_eq!(scene_score(12.0, 12.0), 0.0);
        // The frame after a cut is close to it again.
        assert_eq!(scene_score(1.0, 60.0), 0.01);
        assert_eq!(scene_score(255.0, 0.0), 1.0);
    }

    #[test]
    fn a_flat_picture_has_no_contrast_and_no_edges() {
        let flat = [128u8; 64];
        let flat = plane(&flat, 8);
        assert_eq!(std_dev(flat), 0.0);
        assert_eq!(laplacian_variance(flat), 0.0);
    }

    #[test]
    fn blur_lowers_the_laplacian_variance() {
        // A checkerboard of 2x2 squares, and the same blurred by a 3x3 box.
        let size = 16;
        let sharp: Vec<u8> = (0..size * size)
            .map(|i| {
                let (x, y) = (i % size, i / size);
                if (x / 2 + y / 2) % 2 == 0 { 0 } else { 255 }
            })
            .collect();
        let blurred: Vec<u8> = (0..size * size)
            .map(|i| {
                let (x, y) = ((i % size) as i32, (i / size) as i32);
                let mut sum = 0u32;
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        let (u, v) = (
                            (x + dx).clamp(0, size as i32 - 1) as usize,
                            (y + dy).clamp(0, size as i32 - 1) as usize,
                        );
                        sum += u32::from(sharp[v * size + u]);
                    }
                }
                (sum / 9) as u8
            })
            .collect();
        let (sharp, blurred) = (plane(&sharp, size), plane(&blurred, size));
        assert!(
            laplacian_variance(sharp) > 4.0 * laplacian_variance(blurred),
            "{} vs {}",
            laplacian_variance(sharp),
            laplacian_variance(blurred)
        );
        assert!((std_dev(sharp) - 127.5).abs() < 1e-9);
    }
}
