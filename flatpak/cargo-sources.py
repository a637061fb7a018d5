#!/usr/bin/env python3
"""Writes flatpak/cargo-sources.json from Cargo.lock: every crate the build needs, as an
archive with its checksum, unpacked into a vendor folder, and a cargo configuration that
builds from that folder. flatpak-builder builds without the network, so the crates come
in as sources, as flatpak-cargo-generator does. Run it after Cargo.lock changes (a test
fails when the two disagree):

    python3 flatpak/cargo-sources.py
"""
import json
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
REGISTRY = "registry+https://github.com/rust-lang/crates.io-index"
VENDOR = "cargo/vendor"


def sources(lock):
    out = []
    for package in lock["package"]:
        if package.get("source") != REGISTRY:
            continue  # The workspace's own crates.
        name, version, checksum = package["name"], package["version"], package["checksum"]
        dest = f"{VENDOR}/{name}-{version}"
        out.append({
            "type": "archive",
            "archive-type": "tar-gzip",
            "url": f"https://static.crates.io/crates/{name}/{name}-{version}.crate",
            "sha256": checksum,
            "dest": dest,
        })
        out.append({
            "type": "inline",
            "contents": json.dumps({"package": checksum, "files": {}}),
            "dest": dest,
            "dest-filename": ".cargo-checksum.json",
        })
    out.append({
        "type": "inline",
        "contents": (
            "[source.vendored-sources]\n"
            f'directory = "{VENDOR}"\n\n'
            "[source.crates-io]\n"
            'replace-with = "vendored-sources"\n'
        ),
        "dest": "cargo",
        "dest-filename": "config.toml",
    })
    return out


def main():
    lock = tomllib.loads((ROOT / "Cargo.lock").read_text())
    path = ROOT / "flatpak" / "cargo-sources.json"
    path.write_text(json.dumps(sources(lock), indent=2) + "\n")


if __name__ == "__main__":
    main()
