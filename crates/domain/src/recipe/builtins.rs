//! The built-in recipes (`GET /v1/recipes`): what every installation can run by name.

use serde_json::Value;

use super::RecipeDoc;

/// The recipes every installation has, by name.
pub fn builtin(name: &str) -> Option<RecipeDoc> {
    builtins()
        .into_iter()
        .find(|r| r.name.as_deref() == Some(name))
}

/// Every built-in recipe.
pub fn builtins() -> Vec<RecipeDoc> {
    let doc = |json: Value| -> RecipeDoc {
        serde_json::from_value(json).unwrap_or_else(|e| unreachable!("a built-in recipe: {e}"))
    };
    vec![
        doc(serde_json::json!({
            "name": "frames",
            "description": "A frame every `every` seconds, zipped with a manifest, the first frame \
                            kept as the thumbnail (what /v1/videos does).",
            "params": {
                "every": {"default": "10s", "description": "seconds between frames (\"10s\", 2.5, \"500ms\")"},
                "mode": {"default": "exact", "description": "exact or keyframe"},
                "format": {"default": "jpg", "description": "jpg, png or webp"},
                "images": {"default": true, "description": "also store the manifest and each frame \
                           as artefacts of their own (false: the zip and the thumbnail only)"}
            },
            "steps": [{
                "name": "frames",
                "op": "frames",
                "options": {
                    "every": {"$param": "every"},
                    "mode": {"$param": "mode"},
                    "format": {"$param": "format"},
                    "images": {"$param": "images"}
                }
            }]
        })),
        doc(serde_json::json!({
            "name": "thumbnail",
            "description": "One frame at `at` seconds (clamped to the duration).",
            "params": {"at": {"default": 1, "description": "seconds from the start"}},
            "steps": [{"name": "thumbnail", "op": "thumbnail", "options": {"at": {"$param": "at"}}}]
        })),
        doc(serde_json::json!({
            "name": "probe",
            "description": "Container and stream facts, checked against the limits.",
            "steps": [{"name": "probe", "op": "probe"}]
        })),
        doc(serde_json::json!({
            "name": "qc",
            "description": "A quality-control report (qc.json) from one decoding pass, with seed \
                            002's rating 0-5 and pass rule; `policy` names checks that must pass.",
            "params": {
                "min_bytes": {"default": crate::ops::MIB, "description": "smaller files fail the size check"},
                "black_min_duration": {"default": 1, "description": "seconds of black before it is reported"},
                "freeze_min_duration": {"default": 2, "description": "seconds of a still picture before it is reported"},
                "silence_min_duration": {"default": 2, "description": "seconds of silence before it is reported"},
                "silence_db": {"default": -60, "description": "dBFS below which audio is silence"},
                "target_lufs": {"default": -23, "description": "integrated loudness to meet (EBU R128)"},
                "lufs_tolerance": {"default": 1, "description": "LU from the target that still meets it"},
                "policy": {"default": [], "description": "checks that must be ok to pass: a list or \"black,silence\""}
            },
            "steps": [{
                "name": "qc",
                "op": "qc",
                "options": {
                    "min_bytes": {"$param": "min_bytes"},
                    "black_min_duration": {"$param": "black_min_duration"},
                    "freeze_min_duration": {"$param": "freeze_min_duration"},
                    "silence_min_duration": {"$param": "silence_min_duration"},
                    "silence_db": {"$param": "silence_db"},
                    "target_lufs": {"$param": "target_lufs"},
                    "lufs_tolerance": {"$param": "lufs_tolerance"},
                    "policy": {"$param": "policy"}
                }
            }]
        })),
        doc(serde_json::json!({
            "name": "package",
            "description": "HLS and DASH from one encode: an H.264 ladder (never upscaled) and AAC \
                            audio in CMAF segments; the step's folder holds master.m3u8, \
                            manifest.mpd, the variant playlists and the segments.",
            "params": {
                "ladder": {"default": "1080,720,480,360", "description": "short sides of the \
                           renditions (\"720,480\"), or a list of {short_side, kbps, profile}"},
                "segment": {"default": 4, "description": "seconds per segment (1-20)"},
                "audio_kbps": {"default": 128, "description": "stereo AAC bit rate; mono gets half"}
            },
            "steps": [{
                "name": "package",
                "op": "package",
                "options": {
                    "ladder": {"$param": "ladder"},
                    "segment": {"$param": "segment"},
                    "audio_kbps": {"$param": "audio_kbps"}
                }
            }]
        })),
        doc(serde_json::json!({
            "name": "call-recording",
            "description": "Seed 004: a call centre's audio merged into a screen recording. One \
                            MP4 whose video is the recording's (copied) and whose audio is the \
                            call on [0, call_end) (padded with silence or cut) then the \
                            recording's own audio to its end; and a thumbnail of it at 1 s.",
            "inputs": ["call_audio", "recording"],
            "params": {
                "call_end": {"description": "where the call ends in the recording: seconds \
                             (12.5) or HH:MM:SS(.mmm) (\"00:00:12\")"}
            },
            "steps": [
                {"name": "merge", "op": "merge_call", "inputs": ["call_audio", "recording"],
                 "options": {"call_end": {"$param": "call_end"}}},
                {"name": "thumbnail", "op": "thumbnail", "inputs": ["merge/video"],
                 "options": {"at": 1}}
            ]
        })),
        doc(serde_json::json!({
            "name": "preview",
            "description": "Probe and thumbnail side by side, then the frames once both succeeded.",
            "params": {
                "every": {"default": "10s", "description": "seconds between frames"},
                "at": {"default": 1, "description": "the thumbnail's time, in seconds"}
            },
            "steps": [
                {"name": "probe", "op": "probe"},
                {"name": "thumbnail", "op": "thumbnail", "options": {"at": {"$param": "at"}}},
                {"name": "frames", "op": "frames", "options": {"every": {"$param": "every"}},
                 "after": ["probe", "thumbnail"]}
            ]
        })),
        doc(serde_json::json!({
            "name": "storyboard",
            "description": "Sprite sheets of a tile every `every` seconds, with the WebVTT file \
                            players read for scrubbing previews.",
            "params": {
                "every": {"default": "5s", "description": "seconds between tiles"},
                "width": {"default": 160, "description": "tile width in pixels (even); the height \
                          follows the video"},
                "columns": {"default": 10, "description": "tiles per row of a sheet"},
                "rows": {"default": 10, "description": "rows per sheet"},
                "mode": {"default": "exact", "description": "exact or keyframe (faster)"}
            },
            "steps": [{
                "name": "storyboard",
                "op": "storyboard",
                "options": {
                    "every": {"$param": "every"},
                    "width": {"$param": "width"},
                    "columns": {"$param": "columns"},
                    "rows": {"$param": "rows"},
                    "mode": {"$param": "mode"}
                }
            }]
        })),
        doc(serde_json::json!({
            "name": "scenes",
            "description": "The frames where a new shot starts, with their scores and times, \
                            zipped with a manifest.",
            "params": {
                "threshold": {"default": 0.3, "description": "score (0-1) above which a frame \
                              starts a new shot, as ffmpeg's scene score"},
                "min_gap": {"default": 1, "description": "seconds within which two cuts are one"},
                "max_scenes": {"default": 100, "description": "keep at most this many cuts, the \
                               strongest"}
            },
            "steps": [{
                "name": "scenes",
                "op": "scenes",
                "options": {
                    "threshold": {"$param": "threshold"},
                    "min_gap": {"$param": "min_gap"},
                    "max_scenes": {"$param": "max_scenes"}
                }
            }]
        })),
        doc(serde_json::json!({
            "name": "smart_thumbnail",
            "description": "The best poster frame among evenly spaced candidates (not black, not \
                            blurred, not a fade), with a manifest scoring each.",
            "params": {
                "candidates": {"default": 10, "description": "how many frames to measure"}
            },
            "steps": [{
                "name": "thumbnail",
                "op": "smart_thumbnail",
                "options": {"candidates": {"$param": "candidates"}}
            }]
        })),
        doc(serde_json::json!({
            "name": "player",
            "description": "What a video player shows before and while it plays: the best poster \
                            frame and a storyboard for scrubbing, side by side.",
            "params": {
                "every": {"default": "5s", "description": "seconds between storyboard tiles"}
            },
            "steps": [
                {"name": "poster", "op": "smart_thumbnail"},
                {"name": "storyboard", "op": "storyboard", "options": {"every": {"$param": "every"}}}
            ]
        })),
    ]
}
