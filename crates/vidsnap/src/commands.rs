//! One function per subcommand, each a thin layer over the media engine.

use std::process::ExitCode;

use vidsnap_media::{FramesRequest, Inspection, MediaEngine, probe::Probe};

use crate::{
    cli::{Failure, FramesArgs, ProbeArgs},
    progress::FramesBar,
};

pub(crate) async fn probe(engine: &MediaEngine, args: ProbeArgs) -> Result<ExitCode, Failure> {
    let inspection = engine.inspect(&args.input).await?;
    if args.json {
        println!("{}", to_json(&inspection)?);
    } else {
        print!("{}", describe(&inspection));
    }
    Ok(if inspection.verdict.accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) async fn frames(engine: &MediaEngine, args: FramesArgs) -> Result<ExitCode, Failure> {
    let out_dir = match args.out {
        Some(dir) => dir,
        None => args
            .input
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| ".".into(), |p| p.to_path_buf()),
    };
    let request = FramesRequest {
        input: args.input,
        out_dir,
        interval: args.every,
        mode: args.mode,
        format: args.format,
        quality: args.quality,
        max_width: args.max_width,
    };
    let bar = FramesBar::new(!args.json);
    let output = engine.extract_frames(&request, &bar).await;
    bar.finish();
    let output = output?;
    if args.json {
        println!("{}", to_json(&output)?);
    } else {
        let count = output.manifest.frames.len();
        println!(
            "{count} frame{} -> {} ({} bytes)\nthumbnail -> {}",
            if count == 1 { "" } else { "s" },
            output.zip.display(),
            output.zip_bytes,
            output.thumbnail.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn to_json(value: &impl serde::Serialize) -> Result<String, Failure> {
    serde_json::to_string_pretty(value).map_err(|e| Failure {
        code: vidsnap_domain::ErrorCode::Internal,
        message: format!("serializing output: {e}"),
    })
}

fn describe(inspection: &Inspection) -> String {
    let mut text = format!("file:       {}\n", inspection.file.display());
    if let Some(probe) = &inspection.probe {
        text.push_str(&describe_probe(probe));
    }
    let verdict = &inspection.verdict;
    if verdict.accepted {
        let container = verdict.container.map(|c| c.to_string()).unwrap_or_default();
        text.push_str(&format!("verdict:    accepted ({container})\n"));
    } else {
        text.push_str(&format!(
            "verdict:    refused [{}] {}\n",
            verdict.code.map(|c| c.to_string()).unwrap_or_default(),
            verdict.message.as_deref().unwrap_or_default()
        ));
    }
    text
}

fn describe_probe(probe: &Probe) -> String {
    let mut text = format!(
        "container:  {} ({})\n",
        probe.container,
        probe.container_long_name.as_deref().unwrap_or("?")
    );
    match (probe.duration, probe.duration_source) {
        (Some(d), Some(source)) => {
            text.push_str(&format!("duration:   {d:.3} s (from the {source:?})\n").to_lowercase())
        }
        _ => text.push_str("duration:   unknown\n"),
    }
    text.push_str(&format!("size:       {} bytes\n", probe.size_bytes));
    if let Some(rate) = probe.bit_rate {
        text.push_str(&format!("bit rate:   {} kb/s\n", rate / 1000));
    }
    if probe.start_time != 0.0 {
        text.push_str(&format!("start time: {:.3} s\n", probe.start_time));
    }
    for s in &probe.streams {
        let mut line = format!(
            "stream #{}:  {} {}",
            s.index,
            s.kind,
            s.codec.as_deref().unwrap_or("?")
        );
        if let (Some(w), Some(h)) = (s.width, s.height) {
            line.push_str(&format!(" {w}x{h}"));
        }
        if let Some(fps) = s.frame_rate {
            line.push_str(&format!(" {fps:.3} fps"));
        }
        if let Some(pf) = &s.pixel_format {
            line.push_str(&format!(" {pf}"));
        }
        if let Some(r) = s.rotation {
            line.push_str(&format!(" rotated {r}°"));
        }
        if let Some(sr) = s.sample_rate {
            line.push_str(&format!(" {sr} Hz"));
        }
        if let Some(ch) = s.channels {
            line.push_str(&format!(" {ch} ch"));
        }
        if s.attached_picture {
            line.push_str(" (cover art)");
        }
        text.push_str(&line);
        text.push('\n');
    }
    text
}
