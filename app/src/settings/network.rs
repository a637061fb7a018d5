//! The settings window's Network page: networking on or off (user-mode, through passt),
//! the host ports forwarded into the VM, and the card's address. Kept apart from the
//! window's other pages because it is the one with rules of its own: how the forwards'
//! text reads, and whether passt is there at all.

use crate::i18n::{tr, tr_args};
use phyllome_vmm::network::{Forward, NetMode, NetworkConfig};
use relm4::adw::prelude::*;
use relm4::gtk::glib;
use relm4::{adw, gtk};

/// The page's widgets the window reads back.
#[derive(Debug)]
pub struct NetworkPage {
    /// The page.
    pub page: adw::PreferencesPage,
    /// The forwards' text.
    pub forwards: adw::EntryRow,
}

/// Reads "tcp:2222:22, udp:5353" (commas or spaces between) into forwards; the first
/// mistake comes back as its sentence.
pub fn parse_forwards(text: &str) -> Result<Vec<Forward>, String> {
    text.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::parse)
        .collect()
}

/// The forwards as the entry shows them.
pub fn forwards_text(forwards: &[Forward]) -> String {
    forwards
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether passt can be found on the `PATH`.
pub fn passt_installed() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .any(|d| d.join(phyllome_vmm::network::passt::PROGRAM).is_file())
    })
}

/// Builds the page for `network`; `on_switch` and `on_forwards` are called with the
/// switch's state and the forwards' text when the user changes them.
pub fn page(
    network: &NetworkConfig,
    running: bool,
    on_switch: impl Fn(bool) + 'static,
    on_forwards: impl Fn(String) + 'static,
) -> NetworkPage {
    let page = adw::PreferencesPage::new();
    page.set_title(&tr("settings-network"));
    page.set_icon_name(Some("network-wired-symbolic"));
    let group = adw::PreferencesGroup::new();
    group.set_title(&tr("settings-network"));
    if running {
        group.set_description(Some(&tr("settings-next-start")));
    }
    let row = adw::ActionRow::new();
    row.set_title(&tr("settings-network-switch"));
    row.set_subtitle(&glib::markup_escape_text(&if passt_installed() {
        tr("settings-network-passt")
    } else {
        tr("settings-network-no-passt")
    }));
    let switch = gtk::Switch::new();
    switch.set_valign(gtk::Align::Center);
    switch.set_active(network.mode == NetMode::Passt);
    switch.connect_active_notify(move |s| on_switch(s.is_active()));
    row.add_suffix(&switch);
    row.set_activatable_widget(Some(&switch));
    group.add(&row);
    if let Some(mac) = network.mac {
        let row = adw::ActionRow::new();
        row.set_title(&tr("settings-network-mac"));
        row.set_subtitle(&mac.to_string());
        row.add_css_class("property");
        group.add(&row);
    }
    page.add(&group);

    let ports = adw::PreferencesGroup::new();
    ports.set_title(&tr("settings-network-forwards"));
    ports.set_description(Some(&tr("settings-network-forwards-description")));
    let forwards = adw::EntryRow::new();
    forwards.set_title(&tr("settings-network-forwards-entry"));
    forwards.set_text(&forwards_text(&network.forward));
    forwards.set_show_apply_button(true);
    forwards.connect_apply(move |e| on_forwards(e.text().to_string()));
    ports.add(&forwards);
    page.add(&ports);
    NetworkPage { page, forwards }
}

/// The sentence for forwards that do not read.
pub fn forwards_refused(why: &str) -> String {
    tr_args("settings-network-forwards-invalid", &[("reason", why)])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn forwards_read_with_commas_or_spaces_and_print_back_the_same() {
        let f = parse_forwards(" tcp:2222:22,udp:5353  tcp:8080:80 ,").unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(forwards_text(&f), "tcp:2222:22, udp:5353:5353, tcp:8080:80");
        assert_eq!(parse_forwards(&forwards_text(&f)).unwrap(), f);
        assert!(parse_forwards("").unwrap().is_empty());
        let e = parse_forwards("tcp:2222:22, ssh").unwrap_err();
        assert!(e.starts_with("'ssh' is not a port forward"), "{e}");
    }
}
