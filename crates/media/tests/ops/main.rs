//! The operations end to end, with real ffmpeg, on clips generated so that the right answer is
//! known by construction (each frame's brightness encodes its index).
//!
//! The engine's extractor child is this executable started with `internal-extract`, so the
//! harness is ours rather than libtest's: `cargo test -p vidsnap-media --test ops [FILTER...]`
//! runs the tests whose names contain a filter (all of them without one), one at a time, and
//! `--list` lists them. A test is a function listed in [`TESTS`]; one left out is dead code,
//! which the lints refuse.

// Tests drive ffmpeg directly to make clips and to read pictures back, independently of the engine.
#![allow(clippy::disallowed_methods)]

mod av_support;
mod concat;
mod frames;
mod merge_call;
mod mux;
mod package;
mod probe;
mod qc;
mod runner;
mod scenes;
mod smart_thumbnail;
mod split;
mod storyboard;
mod support;
mod thumbnail;
mod trim;

use std::{panic, process::ExitCode, time::Instant};

type Test = (&'static str, fn());

macro_rules! tests {
    ($($module:ident :: $name:ident),* $(,)?) => {
        &[$((concat!(stringify!($module), "::", stringify!($name)), $module::$name as fn())),*]
    };
}

const TESTS: &[Test] = tests![
    frames::outputs_are_named_as_the_service_stored_them,
    frames::with_images_every_frame_is_an_artefact_equal_to_its_zip_entry,
    frames::percent_climbs_to_one_hundred,
    frames::extract_frames_still_publishes_beside_each_other,
    package::both_manifests_decode_every_rendition_to_the_end,
    package::nothing_is_upscaled,
    package::a_rotated_source_gives_upright_portrait_renditions,
    package::a_source_without_audio_has_no_audio_rendition,
    package::mono_stays_mono,
    package::bad_ladders_are_field_errors,
    package::one_ffmpeg_process_makes_every_rendition,
    probe::a_text_file_is_not_a_video_and_not_retried,
    probe::a_clip_is_summarised_in_probe_json,
    probe::a_wrong_number_of_inputs_is_refused,
    probe::an_ffprobe_killed_by_a_signal_is_retried_not_a_verdict_on_the_file,
    qc::defects_are_found_where_they_were_made,
    qc::a_clean_clip_passes_with_no_findings,
    qc::a_tone_reads_its_loudness_and_audio_only_is_rating_two,
    qc::silent_audio_only_is_rating_one_and_fails,
    qc::video_only_is_rating_three_and_small_files_fail_the_size_check,
    qc::video_with_silent_audio_is_rating_four,
    qc::a_truncated_file_fails_its_decode_check,
    qc::a_text_file_is_rating_zero_and_still_a_report,
    qc::rotation_is_reported,
    qc::interlaced_content_is_flagged,
    qc::the_policy_turns_findings_into_failures,
    qc::percent_climbs_to_one_hundred,
    qc::one_decoding_pass_reads_the_file,
    qc::a_missing_ffmpeg_is_retryable,
    thumbnail::at_one_second_is_the_frame_shown_at_one_second,
    thumbnail::past_the_end_is_the_last_frame,
    thumbnail::a_half_second_clip_at_one_second_is_its_last_frame,
    thumbnail::a_missing_extractor_is_retryable,
    runner::a_child_dies_with_its_sigkilled_parent,
    storyboard::cues_cover_the_duration_and_point_inside_their_sheets,
    storyboard::a_picture_of_another_shape_is_fitted_inside_its_tile,
    storyboard::too_many_sheets_are_refused_before_anything_runs,
    scenes::five_shots_give_four_cuts_within_a_frame_of_where_they_were_made,
    scenes::a_clip_without_a_cut_has_none,
    scenes::min_gap_and_max_scenes_keep_the_strongest,
    smart_thumbnail::never_picks_a_black_frame_on_a_clip_that_starts_black,
    smart_thumbnail::prefers_a_sharp_frame_over_a_blurred_one,
    split::both_streams_are_copied_packet_for_packet,
    split::a_file_without_one_of_the_streams_is_refused,
    trim::audio_is_cut_at_the_sample,
    trim::reencoded_video_is_cut_at_the_frame,
    trim::copied_video_starts_at_the_keyframe_at_or_before_start,
    trim::a_video_keeps_its_sound_in_step,
    trim::times_the_file_does_not_reach_are_time_out_of_range,
    concat::mixed_rates_layouts_and_codecs_join_in_order,
    concat::videos_join_at_the_first_size_with_their_sound,
    concat::one_input_is_not_a_list,
    mux::pad_keeps_the_whole_video_and_pads_the_audio_with_silence,
    mux::shortest_ends_with_the_audio_and_copies_aac,
    mux::audio_that_is_not_aac_is_encoded,
    mux::the_first_input_needs_a_video,
    merge_call::the_call_then_the_recording_from_call_end,
    merge_call::a_short_call_is_padded_with_silence_up_to_call_end,
    merge_call::a_recording_without_sound_gets_silence_after_the_call,
    merge_call::call_end_past_the_recording_is_time_out_of_range,
    merge_call::a_call_without_sound_or_unreadable_is_refused,
    merge_call::concurrent_merges_share_no_file,
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(support::EXTRACTOR_ARG) {
        return vidsnap_media::extract::child_main();
    }
    if args.first().map(String::as_str) == Some(runner::PARENT_ARG) {
        return runner::parent_main();
    }
    let filters: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let exact = args.iter().any(|a| a == "--exact");
    let chosen: Vec<&Test> = TESTS
        .iter()
        .filter(|(name, _)| {
            filters.is_empty()
                || filters
                    .iter()
                    .any(|f| if exact { name == f } else { name.contains(f) })
        })
        .collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in &chosen {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    // `--ignored` asks for ignored tests only, and none are.
    if args.iter().any(|a| a == "--ignored") {
        println!("\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed");
        return ExitCode::SUCCESS;
    }

    println!("\nrunning {} tests", chosen.len());
    let started = Instant::now();
    let mut failed = Vec::new();
    for (name, test) in &chosen {
        let outcome = panic::catch_unwind(test);
        println!(
            "test {name} ... {}",
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; {} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        chosen.len() - failed.len(),
        failed.len(),
        TESTS.len() - chosen.len(),
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}
