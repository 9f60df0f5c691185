//! Embeds the map page (`web/`) and its map library in the binary, so that the one
//! binary serves everything with no files beside it.
//!
//! Leaflet and uPlot come from the npm registry: this script runs `npm ci` on
//! `web/package.json` and `web/package-lock.json` inside `OUT_DIR` (once; it is cached
//! there until the lock file changes) and embeds Leaflet's `dist/` files under
//! `/vendor/leaflet/` and uPlot's script and stylesheet under `/vendor/uplot/`.
//! Without npm the build still succeeds, with a warning; the page then says what is
//! missing, and the asset tests fail.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let web = manifest
        .join("../web")
        .canonicalize()
        .expect("the web/ folder beside dashboard/");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    let mut assets: Vec<(String, PathBuf)> = Vec::new();
    collect(&web, &web, &mut assets);
    for (_, path) in &assets {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-changed={}", web.display());
    println!(
        "cargo:rerun-if-changed={}",
        web.join("package-lock.json").display()
    );

    match install_npm_packages(&web, &out) {
        Ok(modules) => {
            let dist = modules.join("leaflet/dist");
            for name in ["leaflet.js", "leaflet.css"] {
                assets.push((format!("/vendor/leaflet/{name}"), dist.join(name)));
            }
            if let Ok(images) = fs::read_dir(dist.join("images")) {
                let mut images: Vec<_> = images.flatten().map(|e| e.path()).collect();
                images.sort();
                for img in images {
                    let name = img
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    assets.push((format!("/vendor/leaflet/images/{name}"), img));
                }
            }
            // The charts' library: its browser build (global `uPlot`) and stylesheet.
            let uplot = modules.join("uplot/dist");
            for name in ["uPlot.iife.min.js", "uPlot.min.css"] {
                assets.push((format!("/vendor/uplot/{name}"), uplot.join(name)));
            }
        }
        Err(why) => println!(
            "cargo:warning=The map page's libraries (Leaflet and uPlot, from npm) are not embedded: {why}. \
             Install Node.js and npm, then build again."
        ),
    }

    assets.sort();
    let mut code = String::from(
        "/// Every embedded file: (URL path, content, ETag).\npub static ASSETS: &[(&str, &[u8], &str)] = &[\n",
    );
    for (url, path) in &assets {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let _ = writeln!(
            code,
            "    ({url:?}, include_bytes!({:?}), \"\\\"{:016x}\\\"\"),",
            path.display().to_string(),
            fnv1a(&bytes)
        );
    }
    code.push_str("];\n");
    fs::write(out.join("assets.rs"), code).expect("writing assets.rs");
}

/// Files of the page itself: everything under `web/` but npm's files, tests and dotfiles.
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "node_modules" || name.starts_with("package") {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push((
                format!("/{}", rel.to_string_lossy().replace('\\', "/")),
                path,
            ));
        }
    }
}

/// Runs `npm ci` in a copy of the page's npm manifest under `OUT_DIR`, unless the same
/// lock file was installed there already. Returns the `node_modules` folder.
fn install_npm_packages(web: &Path, out: &Path) -> Result<PathBuf, String> {
    let dir = out.join("npm");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let lock = fs::read(web.join("package-lock.json"))
        .map_err(|e| format!("web/package-lock.json: {e}"))?;
    let stamp = dir.join(".installed-lock");
    let modules = dir.join("node_modules");
    if fs::read(&stamp).ok().as_deref() == Some(&lock[..])
        && modules.join("leaflet/dist/leaflet.js").exists()
        && modules.join("uplot/dist/uPlot.iife.min.js").exists()
    {
        return Ok(modules);
    }
    for f in ["package.json", "package-lock.json"] {
        fs::copy(web.join(f), dir.join(f)).map_err(|e| format!("copying web/{f}: {e}"))?;
    }
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    let status = Command::new(npm)
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
        ])
        .current_dir(&dir)
        .status()
        .map_err(|e| format!("could not run npm ({e})"))?;
    if !status.success() {
        return Err(format!("`npm ci` failed ({status})"));
    }
    fs::write(&stamp, &lock).map_err(|e| e.to_string())?;
    Ok(modules)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
