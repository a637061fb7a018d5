//! The settings window's Sound page: the sound card on or off (it plays through the
//! desktop's PipeWire) and the microphone, which is the user's to allow. Kept apart from the
//! window's other pages because the microphone changes a running VM at once while the card
//! waits for the next start.

use crate::i18n::tr;
use phyllome_vmm::config::{DevicesConfig, SoundBackend};
use relm4::adw::prelude::*;
use relm4::{adw, gtk};

/// The page's widgets the window updates.
#[derive(Debug)]
pub struct SoundPage {
    /// The page.
    pub page: adw::PreferencesPage,
    /// The microphone's row (usable only with a sound card).
    pub microphone: adw::ActionRow,
}

/// The definition's devices with the sound card on or off (on: through PipeWire; the
/// microphone setting is kept either way).
pub fn with_sound(devices: &DevicesConfig, on: bool) -> DevicesConfig {
    let mut d = devices.clone();
    d.sound = on.then_some(d.sound.unwrap_or(SoundBackend::Pipewire));
    d
}

fn switch_row(
    title: &str,
    subtitle: &str,
    active: bool,
    on_change: impl Fn(bool) + 'static,
) -> adw::ActionRow {
    let row = adw::ActionRow::new();
    row.set_title(title);
    row.set_subtitle(subtitle);
    let switch = gtk::Switch::new();
    switch.set_valign(gtk::Align::Center);
    switch.set_active(active);
    switch.connect_active_notify(move |s| on_change(s.is_active()));
    row.add_suffix(&switch);
    row.set_activatable_widget(Some(&switch));
    row
}

/// Builds the page for `devices`; `on_sound` and `on_microphone` are called with the
/// switches' states when the user changes them.
pub fn page(
    devices: &DevicesConfig,
    running: bool,
    on_sound: impl Fn(bool) + 'static,
    on_microphone: impl Fn(bool) + 'static,
) -> SoundPage {
    let page = adw::PreferencesPage::new();
    page.set_title(&tr("settings-sound"));
    page.set_icon_name(Some("audio-speakers-symbolic"));
    let group = adw::PreferencesGroup::new();
    group.set_title(&tr("settings-sound"));
    let card = switch_row(
        &tr("settings-sound-switch"),
        &tr("settings-sound-description"),
        devices.sound.is_some(),
        on_sound,
    );
    group.add(&card);
    let microphone = switch_row(
        &tr("settings-microphone"),
        &tr("settings-microphone-description"),
        devices.microphone,
        on_microphone,
    );
    microphone.set_sensitive(devices.sound.is_some());
    group.add(&microphone);
    if running {
        // The card waits for the next start; the microphone changes at once.
        card.set_subtitle(&format!(
            "{} {}",
            tr("settings-sound-description"),
            tr("settings-next-start")
        ));
    }
    page.add(&group);
    SoundPage { page, microphone }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_adds_a_pipewire_card_and_keeps_the_microphone_setting() {
        let mut d = DevicesConfig {
            microphone: true,
            ..DevicesConfig::default()
        };
        d = with_sound(&d, true);
        assert_eq!(d.sound, Some(SoundBackend::Pipewire));
        assert!(d.microphone);
        let none = DevicesConfig {
            sound: Some(SoundBackend::None),
            ..DevicesConfig::default()
        };
        assert_eq!(
            with_sound(&none, true).sound,
            Some(SoundBackend::None),
            "kept"
        );
        assert_eq!(with_sound(&d, false).sound, None);
    }
}
