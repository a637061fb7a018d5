//! The desktop integration files in `data/`: the `.desktop` file and the AppStream metainfo
//! pass their validators, they name the same application as the app's ID, and the icons they
//! name exist and render (through gdk-pixbuf's SVG loader, as the desktop will).

#![allow(clippy::unwrap_used, reason = "a test")]

use phyllome_tests::desktop::decode;
use phyllome_tests::workspace;
use std::process::Command;

const APP_ID: &str = "org.phyllome.Phyllome";

fn data(path: &str) -> std::path::PathBuf {
    workspace().join("data").join(path)
}

fn run(program: &str, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is installed (scripts/install-deps.sh): {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_desktop_file_and_the_metainfo_validate_and_agree_with_the_app() {
    let desktop = data(&format!("{APP_ID}.desktop"));
    let (ok, text) = run("desktop-file-validate", &[desktop.as_os_str()]);
    assert!(
        ok && text.trim().is_empty(),
        "desktop-file-validate: {text}"
    );
    let metainfo = data(&format!("{APP_ID}.metainfo.xml"));
    let (ok, text) = run(
        "appstreamcli",
        &[
            "validate".as_ref(),
            "--no-net".as_ref(),
            metainfo.as_os_str(),
        ],
    );
    assert!(ok, "appstreamcli validate: {text}");

    let desktop_text = std::fs::read_to_string(&desktop).unwrap();
    assert!(desktop_text.contains(&format!("\nIcon={APP_ID}\n")));
    let meta = std::fs::read_to_string(&metainfo).unwrap();
    assert!(meta.contains(&format!("<id>{APP_ID}</id>")));
    assert!(meta.contains(&format!(
        r#"<launchable type="desktop-id">{APP_ID}.desktop</launchable>"#
    )));
    assert!(meta.contains("<screenshot") && meta.contains("<release "));
    // The app registers itself under the same ID.
    let main = std::fs::read_to_string(workspace().join("app/src/lib.rs")).unwrap();
    assert!(main.contains(&format!("\"{APP_ID}\"")), "app ID differs");
}

#[test]
fn the_icons_exist_and_render() {
    for (file, size) in [
        (format!("icons/hicolor/scalable/apps/{APP_ID}.svg"), 128),
        (
            format!("icons/hicolor/symbolic/apps/{APP_ID}-symbolic.svg"),
            16,
        ),
    ] {
        let svg = data(&file);
        let png = tempfile::NamedTempFile::new().unwrap();
        let (ok, text) = run(
            "gdk-pixbuf-thumbnailer",
            &[
                "-s".as_ref(),
                size.to_string().as_ref(),
                svg.as_os_str(),
                png.path().as_os_str(),
            ],
        );
        assert!(ok, "{file} does not render: {text}");
        let (w, h, rgb) = decode(png.path());
        assert_eq!((w, h), (size, size), "{file}");
        // Something is drawn: not one flat colour.
        let first = &rgb[..3];
        assert!(
            rgb.chunks_exact(3).any(|p| p != first),
            "{file} renders as a flat square"
        );
    }
}
