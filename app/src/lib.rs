//! Phyllome's app, as a library for its binary and its benchmarks: the library window, the
//! install wizard, the settings, the display window and the pieces they are made of, the
//! tray, translations, and the VM library's store.

pub mod a11y;
pub mod display;
pub mod frames;
pub mod graphics;
pub mod i18n;
pub mod iso;
pub mod library;
pub mod messages;
pub mod new_vm;
pub mod resources;
pub mod runner;
pub mod screen;
pub mod settings;
pub mod store;
pub mod tray;
pub mod window_state;
pub mod wizard;

/// The application's ID (D-Bus name, desktop file, icon, resource path).
pub const APP_ID: &str = "org.phyllome.Phyllome";

/// Where the bundled resources live (the application's resource base path).
pub const RESOURCE_PATH: &str = "/org/phyllome/Phyllome";

/// Registers the bundled resources (`ui-resources/`, compiled by `build.rs`): GTK then loads
/// `style.css` and the app's icons from the application's resource path by itself.
pub fn register_resources() -> Result<(), relm4::gtk::glib::Error> {
    relm4::gtk::gio::resources_register_include!("phyllome.gresource")
}

#[cfg(test)]
mod tests {
    use relm4::gtk::gio;

    #[test]
    fn the_resources_hold_the_stylesheet_and_the_icons() {
        super::register_resources().unwrap();
        for path in [
            "/org/phyllome/Phyllome/style.css",
            "/org/phyllome/Phyllome/icons/scalable/apps/org.phyllome.Phyllome.svg",
            "/org/phyllome/Phyllome/icons/scalable/apps/org.phyllome.Phyllome-symbolic.svg",
        ] {
            let data = gio::resources_lookup_data(path, gio::ResourceLookupFlags::NONE)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(!data.is_empty(), "{path} is empty");
        }
        let css = gio::resources_lookup_data(
            "/org/phyllome/Phyllome/style.css",
            gio::ResourceLookupFlags::NONE,
        )
        .unwrap();
        assert!(String::from_utf8_lossy(&css).contains(".guest-screen"));
    }
}
