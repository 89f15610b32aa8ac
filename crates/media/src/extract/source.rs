//! The demux/decode cursor: finds the frame that stands for each target time, decoding as little
//! as possible.
//!
//! Targets arrive in ascending order. For each one the cursor either reads on from where it is or
//! seeks to the keyframe at or before the target, whichever decodes less: it seeks only when the
//! target is further ahead than the longest keyframe interval seen so far, so a file with sparse
//! keyframes is read straight through instead of re-decoded from the same keyframe again and again.
//!
//! - `exact`: decode from that keyframe until the first frame past the target; the answer is the
//!   last frame whose presentation time is <= the target (the frame a player shows at t). Frames
//!   are compared in presentation order, so B-frames, variable frame rates and non-zero start times
//!   (MPEG-TS) come out right.
//! - `keyframe`: read packets only (no decoding) up to the target and decode the one keyframe
//!   packet at or before it. Decoders that ignore `skip_frame` (VP9) do not matter: non-key
//!   packets never reach the decoder.

use std::path::Path;

use ffmpeg_next::{
    Packet, Rational,
    codec::{self, threading},
    decoder, format, frame, media,
};
use vidsnap_domain::{ErrorCode, FrameMode};

use super::ExtractError;

/// Slack for comparing float seconds computed from integer ticks.
const EPSILON: f64 = 1e-6;
/// Never seek for less than this: reading on is cheaper than a seek and a decoder flush.
const MIN_SEEK_DISTANCE: f64 = 1.0;

/// A decoded frame and its presentation time, in seconds from the container's start.
pub(crate) struct Timed {
    pub frame: frame::Video,
    pub time: f64,
}

impl Clone for Timed {
    fn clone(&self) -> Self {
        // `frame::Video::clone` allocates and copies the pixels (ffmpeg-next's `Clone` is
        // `av_frame_copy`, not `av_frame_ref`): a few milliseconds for a 1080p frame.
        Self {
            frame: self.frame.clone(),
            time: self.time,
        }
    }
}

struct TimedPacket {
    packet: Packet,
    /// Presentation time (or decoding time when the packet has no pts).
    time: f64,
    /// Decoding time; packets arrive in this order.
    decode_time: f64,
}

pub(crate) struct Source {
    input: format::context::Input,
    stream: usize,
    time_base: Rational,
    /// The container's start, in seconds; every reported time is relative to it.
    origin: f64,
    decoder: decoder::Video,
    mode: FrameMode,
    /// Exact mode: the latest frame at or before the current target.
    last: Option<Timed>,
    /// Exact mode: a frame decoded past the previous target, kept for the next one.
    pending: Option<Timed>,
    /// Keyframe mode: the latest key packet read at or before the current target (or the first
    /// one, when the stream starts after the target).
    last_key: Option<TimedPacket>,
    /// Keyframe mode: a packet read past the previous target.
    pending_packet: Option<TimedPacket>,
    /// Time of the furthest frame (exact) or packet (keyframe) reached since the last seek.
    position: Option<f64>,
    /// The previous key packet's time since the last seek, to measure keyframe intervals.
    previous_key: Option<f64>,
    /// The longest keyframe interval seen (or proven by a useless seek).
    longest_gop: f64,
    input_eof: bool,
    decoder_drained: bool,
}

impl Source {
    pub(crate) fn open(path: &Path, mode: FrameMode) -> Result<Self, ExtractError> {
        let input =
            format::input(path).map_err(|e| ExtractError::corrupt("opening the input", e))?;
        let stream = input.streams().best(media::Type::Video).ok_or_else(|| {
            ExtractError::new(ErrorCode::NoVideoStream, "the file has no video stream")
        })?;
        let index = stream.index();
        let time_base = stream.time_base();
        let mut context = codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| ExtractError::corrupt("reading the video stream's parameters", e))?;
        // One thread: frame threading adds latency (frames decoded past the target are wasted) and
        // costs about 10% more CPU; parallelism belongs to jobs, not to one decoder.
        context.set_threading(threading::Config {
            kind: threading::Type::None,
            count: 1,
            ..threading::Config::default()
        });
        let decoder = context
            .decoder()
            .video()
            .map_err(|e| ExtractError::corrupt("opening the video decoder", e))?;
        // The container's start is the earliest stream start, as libavformat and ffprobe define it.
        let origin = input
            .streams()
            .filter(|s| s.start_time() != ffmpeg_next::ffi::AV_NOPTS_VALUE)
            .map(|s| {
                let tb = s.time_base();
                s.start_time() as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator())
            })
            .reduce(f64::min)
            .unwrap_or(0.0);
        Ok(Self {
            input,
            stream: index,
            time_base,
            origin,
            decoder,
            mode,
            last: None,
            pending: None,
            last_key: None,
            pending_packet: None,
            position: None,
            previous_key: None,
            longest_gop: 0.0,
            input_eof: false,
            decoder_drained: false,
        })
    }

    /// The frame standing for `target` (seconds from the start) under this cursor's mode.
    /// `None` only when the video has no decodable frame at all.
    pub(crate) fn frame_at(&mut self, target: f64) -> Result<Option<Timed>, ExtractError> {
        match self.mode {
            FrameMode::Exact => self.exact_frame_at(target),
            FrameMode::Keyframe => self.keyframe_at(target),
        }
    }

    /// The next frame in presentation order, whatever its time: for reading a video straight
    /// through (scene detection). Not to be mixed with [`Source::frame_at`].
    pub(crate) fn next_frame(&mut self) -> Result<Option<Timed>, ExtractError> {
        match self.pending.take() {
            Some(frame) => Ok(Some(frame)),
            None => self.decode_next(),
        }
    }

    /// Exact mode: the frame after the one [`Source::frame_at`] last returned (`None` at the
    /// end), without moving on: the next target still finds its own frame.
    pub(crate) fn following(&mut self) -> Result<Option<Timed>, ExtractError> {
        if self.pending.is_none() {
            self.pending = self.decode_next()?;
        }
        Ok(self.pending.clone())
    }

    fn seconds(&self, ticks: i64) -> f64 {
        ticks as f64 * f64::from(self.time_base.numerator())
            / f64::from(self.time_base.denominator())
            - self.origin
    }

    fn should_seek(&self, target: f64) -> bool {
        let here = self.position.unwrap_or(0.0);
        target - here > self.longest_gop.max(MIN_SEEK_DISTANCE)
    }

    /// Seeks the demuxer to the keyframe at or before `target` and resets decoding state.
    /// Returns false when the demuxer cannot seek (then reading simply goes on).
    fn seek_to(&mut self, target: f64) -> bool {
        let ts = ((target + self.origin) * f64::from(ffmpeg_next::ffi::AV_TIME_BASE)) as i64;
        // At the start any direction will do: the first keyframe may come after the container's
        // start (audio first), and "at or before" would then find nothing.
        let sought = if target <= 0.0 {
            self.input.seek(ts, ..)
        } else {
            self.input.seek(ts, ..ts)
        };
        if sought.is_err() {
            return false;
        }
        self.decoder.flush();
        self.last = None;
        self.pending = None;
        self.last_key = None;
        self.pending_packet = None;
        self.previous_key = None;
        self.input_eof = false;
        self.decoder_drained = false;
        true
    }

    /// Reads the next packet of the video stream, noting keyframe intervals.
    fn read_packet(&mut self) -> Result<Option<TimedPacket>, ExtractError> {
        if self.input_eof {
            return Ok(None);
        }
        loop {
            let mut packet = Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {}
                // Any read error ends the input, as in ffmpeg: what was decoded so far stands, and
                // a file with nothing decodable ends up with no frame, reported as corrupt.
                Err(_) => {
                    self.input_eof = true;
                    return Ok(None);
                }
            }
            if packet.stream() != self.stream {
                continue;
            }
            let Some(decode_ticks) = packet.dts().or(packet.pts()) else {
                // No timestamp at all: feed it to the decoder but it cannot bound a search.
                let time = self.position.unwrap_or(0.0);
                return Ok(Some(TimedPacket {
                    packet,
                    time,
                    decode_time: time,
                }));
            };
            let decode_time = self.seconds(decode_ticks);
            let time = packet.pts().map_or(decode_time, |pts| self.seconds(pts));
            if packet.is_key() {
                if let Some(previous) = self.previous_key.filter(|p| time > *p) {
                    self.longest_gop = self.longest_gop.max(time - previous);
                }
                self.previous_key = Some(time);
            }
            return Ok(Some(TimedPacket {
                packet,
                time,
                decode_time,
            }));
        }
    }

    /// The next decoded frame in presentation order, or `None` at the end.
    fn decode_next(&mut self) -> Result<Option<Timed>, ExtractError> {
        let mut frame = frame::Video::empty();
        loop {
            if self.decoder.receive_frame(&mut frame).is_ok() {
                let time = match frame.timestamp().or(frame.pts()) {
                    Some(ts) => self.seconds(ts),
                    None => self.position.unwrap_or(0.0),
                };
                self.position = Some(self.position.map_or(time, |p| p.max(time)));
                return Ok(Some(Timed { frame, time }));
            }
            if self.decoder_drained {
                return Ok(None);
            }
            match self.read_packet()? {
                // A packet the decoder refuses (corrupt data) is skipped, as ffmpeg does.
                Some(p) => {
                    let _ = self.decoder.send_packet(&p.packet);
                }
                None => {
                    let _ = self.decoder.send_eof();
                    self.decoder_drained = true;
                }
            }
        }
    }

    fn exact_frame_at(&mut self, target: f64) -> Result<Option<Timed>, ExtractError> {
        if self.should_seek(target) {
            self.seek_before(target)?;
        }
        loop {
            let next = match self.pending.take() {
                Some(frame) => Some(frame),
                None => self.decode_next()?,
            };
            match next {
                Some(frame) if frame.time <= target + EPSILON => self.last = Some(frame),
                Some(frame) => {
                    self.pending = Some(frame);
                    break;
                }
                None => break,
            }
        }
        // A stream that starts after `target` (video slightly behind audio) shows its first frame.
        Ok(self.last.clone().or_else(|| self.pending.clone()))
    }

    /// Seeks to the keyframe at or before `target` and checks the landing: a demuxer that lands
    /// after the target (MPEG-TS seeks by bisection, B-frames shift times) is sent further back,
    /// doubling the step, until the first frame or packet is early enough.
    fn seek_before(&mut self, target: f64) -> Result<(), ExtractError> {
        let reached = self.position.unwrap_or(0.0);
        let mut back = 0.0;
        loop {
            let aim = (target - back).max(0.0);
            back = if back == 0.0 { 1.0 } else { back * 2.0 };
            if !self.seek_to(aim) {
                if aim > 0.0 {
                    continue;
                }
                return Ok(());
            }
            let landed = match self.mode {
                FrameMode::Exact => {
                    self.pending = self.decode_next()?;
                    self.pending.as_ref().map(|f| f.time)
                }
                // Some demuxers (MPEG-TS) land on any packet: the landing is the first keyframe.
                FrameMode::Keyframe => loop {
                    match self.read_packet()? {
                        None => break None,
                        Some(p) if p.packet.is_key() || p.decode_time > target + EPSILON => {
                            let time = if p.packet.is_key() {
                                p.time
                            } else {
                                p.decode_time
                            };
                            self.pending_packet = Some(p);
                            break Some(time);
                        }
                        Some(_) => {}
                    }
                },
            };
            match landed {
                // Past the target, or at the very end (a bisecting demuxer can land there).
                Some(t) if t > target + EPSILON && aim > 0.0 => {}
                None if aim > 0.0 => {}
                Some(t) => {
                    if t <= reached {
                        // The seek went back behind what was already read: no keyframe in
                        // between, so seeking over this distance cannot pay off.
                        self.longest_gop = self.longest_gop.max(target - t);
                    }
                    return Ok(());
                }
                None => return Ok(()),
            }
        }
    }

    fn keyframe_at(&mut self, target: f64) -> Result<Option<Timed>, ExtractError> {
        if self.should_seek(target) {
            self.seek_before(target)?;
        }
        self.scan_keys_to(target)?;
        let Some(key) = self.last_key.as_ref() else {
            return Ok(None);
        };
        let packet = key.packet.clone();
        let fallback_time = key.time;
        self.decoder.flush();
        let _ = self.decoder.send_packet(&packet);
        let _ = self.decoder.send_eof();
        let mut frame = frame::Video::empty();
        let decoded = self.decoder.receive_frame(&mut frame).is_ok();
        self.decoder.flush();
        if !decoded {
            return Ok(None);
        }
        let time = frame
            .timestamp()
            .or(frame.pts())
            .map_or(fallback_time, |ts| self.seconds(ts));
        Ok(Some(Timed { frame, time }))
    }

    /// Reads packets (without decoding) until one is past `target`, remembering the last key
    /// packet at or before it.
    fn scan_keys_to(&mut self, target: f64) -> Result<(), ExtractError> {
        loop {
            let next = match self.pending_packet.take() {
                Some(p) => Some(p),
                None => self.read_packet()?,
            };
            let Some(packet) = next else {
                return Ok(());
            };
            self.position = Some(
                self.position
                    .map_or(packet.decode_time, |p| p.max(packet.decode_time)),
            );
            // Packets come in decoding order and pts >= dts: once a dts is past the target, no
            // later packet can be shown at or before it.
            if packet.decode_time > target + EPSILON {
                self.pending_packet = Some(packet);
                return Ok(());
            }
            // The first keyframe also stands for targets before it (a stream starting late);
            // keyframes are never reordered, so no later one can be shown before it.
            if packet.packet.is_key()
                && (packet.time <= target + EPSILON || self.last_key.is_none())
            {
                self.last_key = Some(packet);
            }
        }
    }
}
