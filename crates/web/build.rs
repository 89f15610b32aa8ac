//! Embeds the web UI: every file under `web/public/`, and the browser builds of the npm
//! libraries it uses, read from `web/node_modules/` (installed by `npm ci` in `web/`, which
//! `scripts/install-deps.sh` runs). Writes `$OUT_DIR/assets.rs`: one entry per file with its
//! bytes, a gzipped copy when that is smaller, and an ETag; and the build's hash, which names
//! the asset folder (`/assets/{hash}/…`), so assets are cached for ever and a new build is a new
//! folder. `index.html` is templated: `{{ASSETS}}` becomes that folder.
//!
//! Without `node_modules` the build still succeeds (others build this workspace without Node):
//! each library is replaced by a stub that says how to install it, and Cargo prints a warning.

use std::{
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

/// `(served path under the asset folder, path under web/node_modules)`.
const LIBRARIES: &[(&str, &str)] = &[
    ("vendor/tus.min.js", "tus-js-client/dist/tus.min.js"),
    ("vendor/hls.min.mjs", "hls.js/dist/hls.min.mjs"),
    (
        "vendor/dash.all.min.mjs",
        "dashjs/dist/modern/esm/dash.all.min.js",
    ),
];

struct File {
    path: String,
    bytes: Vec<u8>,
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let web = manifest.join("../../web");
    let public = web.join("public");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir"));
    println!("cargo::rerun-if-changed={}", public.display());
    println!(
        "cargo::rerun-if-changed={}",
        web.join("package-lock.json").display()
    );

    let mut files = Vec::new();
    if public.is_dir() {
        collect(&public, &public, &mut files);
    } else {
        // A build context without web/ (an image built from crates/ alone): the API works,
        // the page says what is missing.
        println!(
            "cargo::warning={} is missing: the binary serves no web UI",
            public.display()
        );
        files.push(File {
            path: "index.html".to_owned(),
            bytes:
                b"<!doctype html><title>Vidsnap</title><p>This build of Vidsnap has no web UI \
                     (web/public was not in its build context). The API is at /v1; see /docs.</p>\n"
                    .to_vec(),
        });
    }
    for (served, source) in LIBRARIES {
        let path = web.join("node_modules").join(source);
        println!("cargo::rerun-if-changed={}", path.display());
        let bytes = match std::fs::read(&path) {
            // The source map comment names a file that is not embedded.
            Ok(bytes) => strip_source_map(bytes),
            Err(_) => {
                println!(
                    "cargo::warning=web/node_modules/{source} is missing: the web UI is built \
                     without it. Run `npm ci` in web/ (scripts/install-deps.sh does), then build again."
                );
                stub(served, source).into_bytes()
            }
        };
        files.push(File {
            path: (*served).to_owned(),
            bytes,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));

    let mut build = Sha256::new();
    for file in &files {
        build.update(file.path.as_bytes());
        build.update([0]);
        build.update(Sha256::digest(&file.bytes));
    }
    let build = hex::encode(build.finalize())[..12].to_owned();
    for file in &mut files {
        if file.path == "index.html" {
            let text = String::from_utf8(std::mem::take(&mut file.bytes)).expect("UTF-8");
            file.bytes = text
                .replace("{{ASSETS}}", &format!("/assets/{build}"))
                .into_bytes();
        }
    }

    let mut code = String::new();
    writeln!(code, "/// Names the asset folder: a hash of every asset.").ok();
    writeln!(code, "pub(crate) const BUILD: &str = {build:?};").ok();
    writeln!(code, "pub(crate) static ASSETS: &[Asset] = &[").ok();
    for (n, file) in files.iter().enumerate() {
        let plain = out.join(format!("asset-{n}"));
        std::fs::write(&plain, &file.bytes).expect("write asset");
        let etag = hex::encode(Sha256::digest(&file.bytes))[..20].to_owned();
        let gzip = compressible(&file.path)
            .then(|| gzip(&file.bytes))
            .filter(|gz| gz.len() + 64 < file.bytes.len())
            .map(|gz| {
                let path = out.join(format!("asset-{n}.gz"));
                std::fs::write(&path, gz).expect("write gzip");
                format!("Some(include_bytes!({:?}))", path.display().to_string())
            })
            .unwrap_or_else(|| "None".to_owned());
        writeln!(
            code,
            "    Asset {{ path: {:?}, content_type: {:?}, etag: {:?}, body: include_bytes!({:?}), gzip: {gzip} }},",
            file.path,
            content_type(&file.path),
            etag,
            plain.display().to_string(),
        )
        .ok();
    }
    writeln!(code, "];").ok();
    std::fs::write(out.join("assets.rs"), code).expect("write assets.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<File>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).expect("under root");
            let served = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.push(File {
                path: served,
                bytes: std::fs::read(&path).expect("read asset"),
            });
        }
    }
}

fn strip_source_map(bytes: Vec<u8>) -> Vec<u8> {
    let Ok(text) = String::from_utf8(bytes.clone()) else {
        return bytes;
    };
    match text.rfind("//# sourceMappingURL=") {
        Some(at) => text[..at].to_owned().into_bytes(),
        None => bytes,
    }
}

/// What a missing library is replaced by: a script that says so where the UI uses it.
fn stub(served: &str, source: &str) -> String {
    let message = format!(
        "this build of Vidsnap has no {source}: run `npm ci` in web/ (scripts/install-deps.sh \
         does) and build again"
    );
    if served.ends_with(".mjs") {
        format!("throw new Error({message:?});\n")
    } else {
        format!("window.vidsnapMissing = (window.vidsnapMissing || []).concat([{message:?}]);\n")
    }
}

fn compressible(path: &str) -> bool {
    [".html", ".js", ".mjs", ".css", ".svg", ".json", ".txt"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("");
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
