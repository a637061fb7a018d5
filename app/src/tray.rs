//! The tray icon: a StatusNotifierItem (through `ksni`, on its own D-Bus thread) whose menu
//! shows or hides the library window and, for each running VM, pauses or resumes it, shuts
//! it down or forces it off. While a StatusNotifierWatcher (the desktop's tray host) holds
//! the icon, closing the window keeps the VMs running; the app asks otherwise.

use crate::i18n::tr;
use std::path::PathBuf;

/// What the menu asks the app to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrayAction {
    /// Show the library window, or hide it when it shows.
    ToggleWindow,
    /// Pause the VM in this folder.
    Pause(PathBuf),
    /// Resume it.
    Resume(PathBuf),
    /// Press its power button.
    ShutDown(PathBuf),
    /// Force it off.
    ForceOff(PathBuf),
    /// Quit the app (asking first when VMs run).
    Quit,
    /// A tray host took the icon (`true`) or there is none (`false`).
    HostPresent(bool),
}

/// A running VM as the menu shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayVm {
    /// Its folder (which VM).
    pub dir: PathBuf,
    /// Its name.
    pub name: String,
    /// Paused rather than running.
    pub paused: bool,
}

/// The tray's state, shared with its D-Bus thread.
pub struct Tray {
    /// Running VMs.
    pub vms: Vec<TrayVm>,
    /// The library window is shown.
    pub window_shown: bool,
    to_app: Box<dyn Fn(TrayAction) + Send>,
}

impl std::fmt::Debug for Tray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tray")
            .field("vms", &self.vms)
            .field("window_shown", &self.window_shown)
            .finish_non_exhaustive()
    }
}

impl Tray {
    /// A tray that reports its menu's choices through `to_app` (from the D-Bus thread).
    pub fn new(to_app: impl Fn(TrayAction) + Send + 'static) -> Self {
        Self {
            vms: Vec::new(),
            window_shown: true,
            to_app: Box::new(to_app),
        }
    }
}

/// The menu's entries as plain data (label, action), so that the layout is testable
/// without D-Bus: `None` is a separator; a VM's entries follow its name, indented.
pub fn entries(tray: &Tray) -> Vec<Option<(String, Option<TrayAction>)>> {
    let mut out = vec![Some((
        if tray.window_shown {
            tr("tray-hide-window")
        } else {
            tr("tray-show-window")
        },
        Some(TrayAction::ToggleWindow),
    ))];
    for vm in &tray.vms {
        out.push(None);
        out.push(Some((vm.name.clone(), None)));
        let d = vm.dir.clone();
        out.push(Some(if vm.paused {
            (tr("action-resume"), Some(TrayAction::Resume(d.clone())))
        } else {
            (tr("action-pause"), Some(TrayAction::Pause(d.clone())))
        }));
        out.push(Some((
            tr("action-shut-down"),
            Some(TrayAction::ShutDown(d.clone())),
        )));
        out.push(Some((
            tr("action-force-off"),
            Some(TrayAction::ForceOff(d)),
        )));
    }
    out.push(None);
    out.push(Some((tr("tray-quit"), Some(TrayAction::Quit))));
    out
}

impl ksni::Tray for Tray {
    fn id(&self) -> String {
        crate::APP_ID.into()
    }

    fn title(&self) -> String {
        tr("app-name")
    }

    fn icon_name(&self) -> String {
        crate::APP_ID.into()
    }

    fn tool_tip(&self) -> ksni::ToolTip {
        ksni::ToolTip {
            title: tr("app-name"),
            description: crate::i18n::tr_args(
                "tray-running-count",
                &[("count", &self.vms.len().to_string())],
            ),
            ..Default::default()
        }
    }

    fn activate(&mut self, _x: i32, _y: i32) {
        (self.to_app)(TrayAction::ToggleWindow);
    }

    fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
        entries(self)
            .into_iter()
            .map(|e| match e {
                None => ksni::MenuItem::Separator,
                Some((label, action)) => ksni::menu::StandardItem {
                    // Underscores are mnemonics in the protocol: keep them literal.
                    label: label.replace('_', "__"),
                    enabled: action.is_some(),
                    activate: Box::new(move |tray: &mut Self| {
                        if let Some(a) = &action {
                            (tray.to_app)(a.clone());
                        }
                    }),
                    ..Default::default()
                }
                .into(),
            })
            .collect()
    }

    fn watcher_online(&self) {
        (self.to_app)(TrayAction::HostPresent(true));
    }

    fn watcher_offine(&self) -> bool {
        (self.to_app)(TrayAction::HostPresent(false));
        // Keep serving: a tray host may come later.
        true
    }
}

/// Starts the tray's D-Bus thread. Without a session bus the tray reports no host (and
/// the app asks before closing with VMs running). In a Flatpak sandbox the item keeps its
/// connection's unique name instead of owning `org.kde.StatusNotifierItem-PID-N`.
pub fn spawn(tray: Tray, on_failure: impl FnOnce(String) + Send + 'static) -> TrayHandle {
    let service = ksni::TrayService::new(tray);
    let handle = service.handle();
    let sandboxed = std::path::Path::new("/.flatpak-info").exists();
    std::thread::Builder::new()
        .name("tray".into())
        .spawn(move || {
            let result = if sandboxed {
                service.run_without_dbus_name()
            } else {
                service.run()
            };
            if let Err(e) = result {
                on_failure(e.to_string());
            }
        })
        .map_or_else(|e| eprintln!("phyllome: no tray: {e}"), drop);
    TrayHandle(handle)
}

/// The app's hold on the tray: updates its state, or stops it.
pub struct TrayHandle(ksni::Handle<Tray>);

impl std::fmt::Debug for TrayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrayHandle")
    }
}

impl TrayHandle {
    /// Changes the tray's state; the D-Bus thread then tells the tray host.
    pub fn update(&self, change: impl FnOnce(&mut Tray)) {
        self.0.update(change);
    }

    /// Removes the icon.
    pub fn shutdown(&self) {
        self.0.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_menu_lists_each_running_vm_with_its_actions() {
        let mut tray = Tray::new(|_| {});
        let e = entries(&tray);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].as_ref().unwrap().1, Some(TrayAction::ToggleWindow));
        assert_eq!(e[2].as_ref().unwrap().1, Some(TrayAction::Quit));
        tray.vms = vec![
            TrayVm {
                dir: "/vms/a".into(),
                name: "Debian".into(),
                paused: false,
            },
            TrayVm {
                dir: "/vms/b".into(),
                name: "Fedora".into(),
                paused: true,
            },
        ];
        let e = entries(&tray);
        let actions: Vec<_> = e.iter().flatten().filter_map(|(_, a)| a.clone()).collect();
        assert_eq!(
            actions,
            vec![
                TrayAction::ToggleWindow,
                TrayAction::Pause("/vms/a".into()),
                TrayAction::ShutDown("/vms/a".into()),
                TrayAction::ForceOff("/vms/a".into()),
                TrayAction::Resume("/vms/b".into()),
                TrayAction::ShutDown("/vms/b".into()),
                TrayAction::ForceOff("/vms/b".into()),
                TrayAction::Quit,
            ]
        );
        assert_eq!(e.iter().filter(|x| x.is_none()).count(), 3);
        let names: Vec<_> = e
            .iter()
            .flatten()
            .filter(|(_, a)| a.is_none())
            .map(|(l, _)| l.as_str())
            .collect();
        assert_eq!(names, ["Debian", "Fedora"]);
    }
}
