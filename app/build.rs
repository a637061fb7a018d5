//! Compiles `ui-resources/` (CSS and icons) into the GResource bundle the app embeds. GTK
//! loads `style.css` and the `icons/` folder from the application's resource path by itself.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("../ui-resources");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("phyllome.gresource");
    println!("cargo::rerun-if-changed={}", dir.display());
    for entry in walk(&dir) {
        println!("cargo::rerun-if-changed={}", entry.display());
    }
    let status = Command::new("glib-compile-resources")
        .arg("--sourcedir")
        .arg(&dir)
        .arg("--target")
        .arg(&out)
        .arg(dir.join("phyllome.gresource.xml"))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            panic!("glib-compile-resources failed ({s}) on ui-resources/phyllome.gresource.xml")
        }
        Err(e) => panic!(
            "glib-compile-resources is needed to build the app ({e}): run scripts/install-deps.sh"
        ),
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files.extend(walk(&p));
            } else {
                files.push(p);
            }
        }
    }
    files
}
