//! The Flatpak manifest (`flatpak/org.phyllome.Phyllome.json`): it parses, builds the app
//! from this tree with the GNOME runtime and the Rust SDK extension, offline, from crate
//! sources that match `Cargo.lock` exactly, installs files that exist, and asks for what
//! the app uses (KVM, the GPU's render node, PipeWire's socket, the tray's D-Bus name) and
//! nothing broader.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use phyllome_tests::workspace;
use serde_json::Value;
use std::collections::BTreeSet;

fn manifest() -> Value {
    let path = workspace().join("flatpak/org.phyllome.Phyllome.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the manifest parses")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_manifest_names_the_runtime_the_sdk_and_every_module() {
    let m = manifest();
    assert_eq!(m["id"], "org.phyllome.Phyllome");
    assert_eq!(m["runtime"], "org.gnome.Platform");
    assert_eq!(m["sdk"], "org.gnome.Sdk");
    assert!(
        strings(&m["sdk-extensions"]).contains(&"org.freedesktop.Sdk.Extension.rust-stable".into())
    );
    assert_eq!(m["command"], "phyllome");
    let modules = m["modules"].as_array().unwrap();
    let names: Vec<&str> = modules
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["phyllome"]);
    let app = &modules[0];
    let commands = strings(&app["build-commands"]);
    assert!(commands[0].contains("--offline") && commands[0].contains("--locked"));
    // Sound: the PipeWire bindings are generated with libclang, from the LLVM extension.
    assert!(
        commands[0].contains("phyllome/pipewire") && commands[0].contains("phyllome-vmm/pipewire")
    );
    assert!(strings(&m["sdk-extensions"]).contains(&"org.freedesktop.Sdk.Extension.llvm18".into()));
    assert_eq!(
        m["build-options"]["env"]["LIBCLANG_PATH"],
        "/usr/lib/sdk/llvm18/lib"
    );
    // Every file it installs is in the tree, and the binaries are the ones cargo builds.
    for c in &commands[1..] {
        let from = c.split_whitespace().nth(2).unwrap();
        if let Some(bin) = from.strip_prefix("target/release/") {
            assert!(["phyllome", "phyllome-vmm"].contains(&bin), "{bin}");
        } else {
            assert!(
                workspace().join(from).is_file(),
                "{from} is not in the tree"
            );
        }
    }
    let sources = app["sources"].as_array().unwrap();
    assert!(sources.iter().any(|s| s == "cargo-sources.json"));
    assert!(sources
        .iter()
        .any(|s| s["type"] == "dir" && s["path"] == ".."));
}

#[test]
fn the_sandbox_holds_what_the_app_uses_and_nothing_broader() {
    let args: BTreeSet<String> = strings(&manifest()["finish-args"]).into_iter().collect();
    for needed in [
        "--device=kvm",
        "--device=dri",
        "--filesystem=xdg-run/pipewire-0:ro",
        "--talk-name=org.kde.StatusNotifierWatcher",
        "--socket=wayland",
        "--socket=fallback-x11",
    ] {
        assert!(args.contains(needed), "missing {needed}");
    }
    for broad in [
        "--device=all",
        "--filesystem=host",
        "--filesystem=home",
        "--socket=system-bus",
        "--socket=session-bus",
        "--socket=x11",
        // No networking until the user-mode network (passt) lands.
        "--share=network",
    ] {
        assert!(!args.contains(broad), "{broad} is broader than needed");
    }
}

#[test]
fn the_offline_crate_sources_match_cargo_lock() {
    let lock: toml::Value =
        toml::from_str(&std::fs::read_to_string(workspace().join("Cargo.lock")).unwrap()).unwrap();
    let wanted: BTreeSet<(String, String)> = lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("source").is_some())
        .map(|p| {
            let (name, version) = (p["name"].as_str().unwrap(), p["version"].as_str().unwrap());
            (
                format!("https://static.crates.io/crates/{name}/{name}-{version}.crate"),
                p["checksum"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let text = std::fs::read_to_string(workspace().join("flatpak/cargo-sources.json")).unwrap();
    let sources: Vec<Value> = serde_json::from_str(&text).unwrap();
    let have: BTreeSet<(String, String)> = sources
        .iter()
        .filter(|s| s["type"] == "archive")
        .map(|s| {
            (
                s["url"].as_str().unwrap().to_owned(),
                s["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let missing: Vec<_> = wanted.difference(&have).map(|(url, _)| url).collect();
    let extra: Vec<_> = have.difference(&wanted).map(|(url, _)| url).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "flatpak/cargo-sources.json is stale (run `python3 flatpak/cargo-sources.py`): \
         missing {missing:?}, not in Cargo.lock {extra:?}"
    );
    assert!(sources.iter().any(|s| s["dest-filename"] == "config.toml"
        && s["contents"]
            .as_str()
            .unwrap()
            .contains("replace-with = \"vendored-sources\"")));
}
