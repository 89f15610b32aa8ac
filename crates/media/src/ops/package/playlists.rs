//! The manifests as ffmpeg's `dash` muxer writes them, made fit for video on demand and checked:
//! every URI relative and inside the package, so the layout can be served from any prefix.

/// A variant playlist for VOD. The muxer writes its HLS playlists as for a live stream: each
/// segment stamped with the wall-clock time it was written (`#EXT-X-PROGRAM-DATE-TIME`, which
/// would make players show the encoding date) and no playlist type. `#EXT-X-PLAYLIST-TYPE:VOD`
/// tells players the list is final, so they may seek anywhere and never reload it.
pub(crate) fn vod_variant(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if [
            "#EXT-X-PROGRAM-DATE-TIME",
            "#EXT-X-PLAYLIST-TYPE",
            "#EXT-X-INDEPENDENT-SEGMENTS",
        ]
        .iter()
        .any(|tag| line.starts_with(tag))
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.starts_with("#EXT-X-VERSION") {
            out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
    }
    out
}

/// The master playlist, stating that every segment starts with a keyframe of a closed GOP
/// (`#EXT-X-INDEPENDENT-SEGMENTS`), which lets players switch renditions at any segment.
pub(crate) fn vod_master(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    for line in text.lines() {
        if line.starts_with("#EXT-X-INDEPENDENT-SEGMENTS") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.starts_with("#EXT-X-VERSION") {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
    }
    out
}

/// Every URI an HLS playlist refers to, in order: its non-comment lines and `URI="…"`
/// attributes (the init segment's `#EXT-X-MAP`, the audio rendition's `#EXT-X-MEDIA`).
pub(crate) fn hls_uris(text: &str) -> Vec<String> {
    let mut uris = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            uris.push(line.to_owned());
            continue;
        }
        uris.extend(attribute_values(line, "URI=\""));
    }
    uris
}

/// The segment templates of a DASH MPD (`initialization` and `media` attributes).
pub(crate) fn dash_templates(text: &str) -> Vec<String> {
    let mut templates = attribute_values(text, " initialization=\"");
    templates.extend(attribute_values(text, " media=\""));
    templates
}

fn attribute_values(text: &str, opening: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(opening) {
        rest = &rest[at + opening.len()..];
        let Some(end) = rest.find('"') else { break };
        values.push(rest[..end].to_owned());
        rest = &rest[end..];
    }
    values
}

/// Whether a URI resolves inside the package wherever it is served: relative, without a scheme,
/// a query or a step up.
pub(crate) fn is_inside(uri: &str) -> bool {
    !uri.is_empty()
        && !uri.starts_with('/')
        && !uri.contains("://")
        && !uri.contains(['?', '#', '\\', ':'])
        && uri
            .split('/')
            .all(|part| !part.is_empty() && part != ".." && part != ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A variant playlist as ffmpeg 5.1's `dash` muxer writes it.
    const VARIANT: &str = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:4\n\
        #EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-MAP:URI=\"stream0/init.mp4\"\n#EXTINF:4.000000,\n\
        #EXT-X-PROGRAM-DATE-TIME:2026-12-07T04:31:37.000+0000\nstream0/seg-00001.m4s\n\
        #EXTINF:2.000000,\n#EXT-X-PROGRAM-DATE-TIME:2026-12-07T04:31:41.000+0000\n\
        stream0/seg-00002.m4s\n#EXT-X-ENDLIST\n";

    const MASTER: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\
        \"group_A1\",NAME=\"audio_1\",DEFAULT=YES,URI=\"media_1.m3u8\"\n#EXT-X-STREAM-INF:\
        BANDWIDTH=3132168,RESOLUTION=1280x720,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\
        \"group_A1\"\nmedia_0.m3u8\n\n";

    #[test]
    fn variants_become_vod_without_wall_clock_times() {
        let vod = vod_variant(VARIANT);
        assert!(!vod.contains("PROGRAM-DATE-TIME"), "{vod}");
        assert!(
            vod.starts_with(
                "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n"
            ),
            "{vod}"
        );
        assert_eq!(vod_variant(&vod), vod, "idempotent");
        assert_eq!(
            hls_uris(&vod),
            [
                "stream0/init.mp4",
                "stream0/seg-00001.m4s",
                "stream0/seg-00002.m4s"
            ]
        );
    }

    #[test]
    fn the_master_lists_audio_and_variants() {
        let master = vod_master(MASTER);
        assert!(master.contains("#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"));
        assert_eq!(vod_master(&master), master, "idempotent");
        assert_eq!(hls_uris(&master), ["media_1.m3u8", "media_0.m3u8"]);
    }

    #[test]
    fn templates_are_read_from_the_mpd() {
        let mpd = r#"<SegmentTemplate timescale="1000000" duration="4000000" initialization="stream$RepresentationID$/init.mp4" media="stream$RepresentationID$/seg-$Number%05d$.m4s" startNumber="1">"#;
        assert_eq!(
            dash_templates(mpd),
            [
                "stream$RepresentationID$/init.mp4",
                "stream$RepresentationID$/seg-$Number%05d$.m4s"
            ]
        );
    }

    #[test]
    fn only_relative_uris_inside_the_package_pass() {
        for good in [
            "media_0.m3u8",
            "stream0/seg-00001.m4s",
            "stream$RepresentationID$/init.mp4",
        ] {
            assert!(is_inside(good), "{good}");
        }
        for bad in [
            "",
            "/abs/seg.m4s",
            "http://cdn/seg.m4s",
            "../seg.m4s",
            "a/../../b",
            "a//b",
            "seg.m4s?token=1",
            "C:\\seg.m4s",
        ] {
            assert!(!is_inside(bad), "{bad}");
        }
    }
}
