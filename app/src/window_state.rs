//! Window size and state remembered between runs, as GNOME apps do: one small TOML file in
//! `$XDG_STATE_HOME/phyllome/` per window kind, written (atomically) when the window closes
//! and read when it opens. A missing or damaged file means the defaults.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A window's remembered geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowState {
    /// Width in application pixels.
    pub width: i32,
    /// Height.
    pub height: i32,
    /// Maximized.
    #[serde(default)]
    pub maximized: bool,
}

impl WindowState {
    /// Sizes outside what a window could be are ignored.
    fn sane(self) -> Option<Self> {
        ((200..=16384).contains(&self.width) && (150..=16384).contains(&self.height))
            .then_some(self)
    }
}

/// `$XDG_STATE_HOME/phyllome/<kind>-window.toml` (or under `~/.local/state`).
fn path(kind: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("phyllome").join(format!("{kind}-window.toml")))
}

/// The remembered state of `kind`'s window, if any.
pub fn load(kind: &str) -> Option<WindowState> {
    let text = std::fs::read_to_string(path(kind)?).ok()?;
    toml::from_str::<WindowState>(&text).ok()?.sane()
}

/// Remembers `state` for `kind`'s window; failures are only logged (nothing depends on it).
pub fn save(kind: &str, state: WindowState) {
    let Some(path) = path(kind) else { return };
    let Some(dir) = path.parent() else { return };
    let result = std::fs::create_dir_all(dir)
        .map_err(|e| e.to_string())
        .and_then(|()| toml::to_string(&state).map_err(|e| e.to_string()))
        .and_then(|text| {
            crate::store::write_atomically(&path, text.as_bytes()).map_err(|e| e.to_string())
        });
    if let Err(e) = result {
        eprintln!("phyllome: cannot remember the window's size: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_nonsense_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        // Only this test touches XDG_STATE_HOME in this process.
        std::env::set_var("XDG_STATE_HOME", dir.path());
        assert_eq!(load("library"), None);
        let s = WindowState {
            width: 900,
            height: 640,
            maximized: true,
        };
        save("library", s);
        assert_eq!(load("library"), Some(s));
        assert_eq!(load("display"), None);
        std::fs::write(
            dir.path().join("phyllome/library-window.toml"),
            "width = -5\nheight = 3\n",
        )
        .unwrap();
        assert_eq!(load("library"), None);
        std::fs::write(dir.path().join("phyllome/library-window.toml"), "garbage").unwrap();
        assert_eq!(load("library"), None);
    }
}
