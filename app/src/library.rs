//! The library window: the user's VMs with name, OS, state and a thumbnail of their last
//! frame, or an empty state that invites creating the first one. From here a VM starts,
//! shuts down (power button), is forced off, paused and resumed, shows its display, opens
//! its settings or is deleted (after a confirmation that asks whether to keep its disks).
//! Broken definitions are listed with their reason and never touched unless asked. The VMs
//! run inside the app ([`crate::runner`]); the tray ([`crate::tray`]) keeps them reachable
//! when the window is closed.

use crate::display::{Display, DisplayInit, DisplayInput, DisplayOutput};
use crate::graphics::{self, Graphics3d};
use crate::i18n::{tr, tr_args};
use crate::runner::{self, RunnerEvent};
use crate::settings::{Settings, SettingsInit, SettingsOutput};
use crate::store::{Entry, Store};
use crate::tray::{self, Tray, TrayAction, TrayVm};
use crate::window_state::{self, WindowState};
use crate::wizard::{Wizard, WizardInit, WizardMsg, WizardOutput};
use phyllome_vmm::api::CommandSender;
use phyllome_vmm::{StopReason, VmCommand, VmConfig, VmEvent};
use relm4::adw::prelude::*;
use relm4::gtk::{gdk, gio, glib};
use relm4::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The thumbnail's file in a VM's folder.
pub const THUMBNAIL: &str = "thumbnail.png";

/// What the library opens with.
#[derive(Debug, Default)]
pub struct LibraryInit {
    /// The library's folder (the default when `None`).
    pub root: Option<PathBuf>,
    /// An installer image to open the wizard on.
    pub install: Option<PathBuf>,
    /// Show a tray icon.
    pub tray: bool,
}

/// Where a VM is in its life, while the app runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunState {
    Starting,
    Running,
    Paused,
    ShuttingDown,
}

/// A VM the app runs.
#[derive(Debug)]
struct Running {
    state: RunState,
    commands: Option<CommandSender>,
    name: String,
    /// Its network went down (passt missing or ended) since it started.
    network_down: bool,
}

/// Messages to the library.
#[derive(Debug)]
pub enum LibraryMsg {
    /// Read the library folder again.
    Reload,
    /// Open the wizard (on this image, if given).
    NewVm(Option<PathBuf>),
    /// The wizard made a VM.
    Created(PathBuf),
    /// The wizard closed.
    WizardClosed,
    /// Start the VM in this folder.
    Start(PathBuf),
    /// Press its power button.
    ShutDown(PathBuf),
    /// Force it off.
    ForceOff(PathBuf),
    /// Restart it (reset), from its display window.
    Restart(PathBuf),
    /// Its display window (opened under this number) is gone.
    DisplayClosed(PathBuf, u64),
    /// Pause it.
    Pause(PathBuf),
    /// Resume it.
    Resume(PathBuf),
    /// Show its display window.
    OpenDisplay(PathBuf),
    /// Open its settings.
    Settings(PathBuf),
    /// Ask before deleting it.
    Delete(PathBuf),
    /// Delete it, keeping its disks or not.
    DeleteConfirmed(PathBuf, bool),
    /// What a VM's runner reports.
    Runner(PathBuf, RunnerEvent),
    /// The 3D probe answered.
    Graphics(Graphics3d),
    /// The tray's menu.
    Tray(TrayAction),
    /// The window's close button.
    CloseRequested,
    /// The answer to "VMs are running": shut them down (`false`) or force them off (`true`),
    /// then quit.
    QuitConfirmed(bool),
    /// Show a short message.
    Toast(String),
    /// A change for this running VM (from its settings, a toast's Force Eject).
    Live(PathBuf, VmCommand),
    /// The display window's microphone button: saved in the definition, and made at once.
    Microphone(PathBuf, bool),
}

/// The library.
#[derive(Debug)]
pub struct Library {
    store: Result<Store, String>,
    entries: Vec<Entry>,
    running: HashMap<PathBuf, Running>,
    graphics: Option<Graphics3d>,
    window: adw::ApplicationWindow,
    stack: gtk::Stack,
    list: gtk::ListBox,
    toasts: adw::ToastOverlay,
    notice: gtk::Label,
    wizard: Option<Controller<Wizard>>,
    /// Open display windows, each with the number it was opened under.
    displays: HashMap<PathBuf, (u64, Controller<Display>)>,
    /// The number the next display window gets.
    next_display: u64,
    settings: Option<Controller<Settings>>,
    tray: Option<tray::TrayHandle>,
    tray_host: bool,
    /// Quit once every VM has stopped.
    quitting: bool,
    /// This computer's KVM, as a sentence when it is not fit to run VMs.
    kvm_problem: Option<String>,
}

/// A sentence about this computer's KVM when it cannot run VMs well, without opening a VM.
pub fn kvm_problem() -> Option<String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) if phyllome_vmm::host::has_hardware_virtualization() => None,
        Ok(_) => Some(tr("kvm-software")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(tr("kvm-missing")),
        Err(_) => Some(tr("kvm-no-permission")),
    }
}

fn state_text(state: Option<RunState>) -> String {
    tr(match state {
        None => "state-off",
        Some(RunState::Starting) => "state-starting",
        Some(RunState::Running) => "state-running",
        Some(RunState::Paused) => "state-paused",
        Some(RunState::ShuttingDown) => "state-shutting-down",
    })
}

/// A flat icon button, named for screen readers by its tooltip.
fn icon_button(icon: &str, tooltip: &str) -> gtk::Button {
    let b = gtk::Button::from_icon_name(icon);
    b.set_tooltip_text(Some(tooltip));
    crate::a11y::set_label(&b, tooltip);
    b.set_valign(gtk::Align::Center);
    b.add_css_class("flat");
    b
}

impl Library {
    fn store(&self) -> Option<&Store> {
        self.store.as_ref().ok()
    }

    fn config(&self, dir: &Path) -> Option<&VmConfig> {
        self.entries.iter().find_map(|e| match e {
            Entry::Vm { dir: d, config } if d == dir => Some(config.as_ref()),
            _ => None,
        })
    }

    fn name_of(&self, dir: &Path) -> String {
        self.config(dir).map_or_else(
            || dir.file_name().unwrap_or_default().to_string_lossy().into(),
            |c| c.name.clone(),
        )
    }

    fn toast(&self, text: &str) {
        let t = adw::Toast::new(&glib::markup_escape_text(text));
        t.set_timeout(6);
        self.toasts.add_toast(t);
    }

    /// A drive's disc changed in the running VM: the definition follows, so that the next
    /// start has the same disc (an installer that ejected its disc does not start again).
    /// A change the definition did not already hold came from the guest: said.
    fn disc_changed(&mut self, dir: &Path, drive: usize, disc: Option<PathBuf>) {
        let Some(mut config) = self.config(dir).cloned() else {
            return;
        };
        let Some(slot) = config.cdroms.get_mut(drive) else {
            return;
        };
        if slot.path == disc {
            return;
        }
        slot.path = disc;
        let name = config.name.clone();
        if let Some(store) = self.store().cloned() {
            if let Err(e) = store.save(dir, &config) {
                self.toast(&crate::messages::store_error(&e));
                return;
            }
        }
        self.toast(&tr_args(
            "vm-disc-ejected",
            &[("name", &name), ("number", &(drive + 1).to_string())],
        ));
        self.reload();
    }

    /// The display window's microphone button: the definition keeps the choice for the
    /// next start, and the running VM follows it now.
    fn microphone(&mut self, dir: &Path, on: bool) {
        let Some(mut config) = self.config(dir).cloned() else {
            return;
        };
        config.devices.microphone = on;
        if let Some(store) = self.store().cloned() {
            if let Err(e) = store.save(dir, &config) {
                self.toast(&crate::messages::store_error(&e));
                return;
            }
        }
        self.send(dir, VmCommand::Microphone(on));
        self.reload();
    }

    fn send(&self, dir: &Path, command: VmCommand) {
        if let Some(c) = self.running.get(dir).and_then(|r| r.commands.as_ref()) {
            if c.send(command).is_err() {
                self.toast(&tr_args("vm-not-running", &[("name", &self.name_of(dir))]));
            }
        }
    }

    fn reload(&mut self) {
        self.entries = match self.store() {
            Some(s) => match s.list() {
                Ok(e) => e,
                Err(e) => {
                    self.toast(&crate::messages::store_error(&e));
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
    }

    /// Tells the tray which VMs run.
    fn update_tray(&self) {
        let Some(tray) = &self.tray else { return };
        let vms: Vec<TrayVm> = self
            .running
            .iter()
            .filter(|(_, r)| r.state != RunState::Starting)
            .map(|(dir, r)| TrayVm {
                dir: dir.clone(),
                name: r.name.clone(),
                paused: r.state == RunState::Paused,
            })
            .collect();
        let shown = self.window.is_visible();
        tray.update(move |t| {
            t.vms = vms;
            t.window_shown = shown;
        });
    }

    /// Rebuilds the list (a handful of rows: simpler than patching them).
    #[allow(clippy::too_many_lines, reason = "one row's widgets, top to bottom")]
    fn rebuild(&self, sender: &ComponentSender<Self>) {
        while let Some(child) = self.list.first_child() {
            self.list.remove(&child);
        }
        for entry in &self.entries {
            let row = adw::ActionRow::new();
            let dir = entry.dir().to_owned();
            match entry {
                Entry::Vm { config, .. } => {
                    let state = self.running.get(&dir).map(|r| r.state);
                    row.set_title(&glib::markup_escape_text(&config.name));
                    let os = config.about.os.clone().unwrap_or_else(|| tr("os-unknown"));
                    let mut subtitle = format!("{os} · {}", state_text(state));
                    if self.running.get(&dir).is_some_and(|r| r.network_down) {
                        subtitle = format!("{subtitle} · {}", tr("state-no-network"));
                    }
                    row.set_subtitle(&glib::markup_escape_text(&subtitle));
                    let thumb = dir.join(THUMBNAIL);
                    let frame = gtk::Frame::new(None);
                    frame.set_size_request(96, 60);
                    frame.set_valign(gtk::Align::Center);
                    if thumb.is_file() {
                        let pic = gtk::Picture::for_filename(&thumb);
                        pic.set_content_fit(gtk::ContentFit::Cover);
                        frame.add_css_class("thumbnail");
                        frame.set_child(Some(&pic));
                    } else {
                        let icon = gtk::Image::from_icon_name("computer-symbolic");
                        icon.set_pixel_size(32);
                        icon.add_css_class("dim-label");
                        frame.add_css_class("thumbnail-empty");
                        frame.set_child(Some(&icon));
                    }
                    row.add_prefix(&frame);

                    let s = sender.input_sender().clone();
                    let d = dir.clone();
                    match state {
                        None => {
                            let b =
                                icon_button("media-playback-start-symbolic", &tr("action-start"));
                            b.connect_clicked(move |_| s.emit(LibraryMsg::Start(d.clone())));
                            row.add_suffix(&b);
                        }
                        Some(_) => {
                            let b =
                                icon_button("video-display-symbolic", &tr("action-open-display"));
                            b.connect_clicked(move |_| s.emit(LibraryMsg::OpenDisplay(d.clone())));
                            row.add_suffix(&b);
                        }
                    }
                    // Activating the row (a click, Enter) starts the VM or shows its
                    // display, as the button does; the button keeps its own name.
                    row.set_activatable(true);
                    let s = sender.input_sender().clone();
                    let d = dir.clone();
                    row.connect_activated(move |_| {
                        s.emit(if state.is_none() {
                            LibraryMsg::Start(d.clone())
                        } else {
                            LibraryMsg::OpenDisplay(d.clone())
                        });
                    });
                    // The rest in a menu, with the row's own actions.
                    let actions = gio::SimpleActionGroup::new();
                    let add = |name: &str, enabled: bool, msg: fn(PathBuf) -> LibraryMsg| {
                        let a = gio::SimpleAction::new(name, None);
                        a.set_enabled(enabled);
                        let s = sender.input_sender().clone();
                        let d = dir.clone();
                        a.connect_activate(move |_, _| s.emit(msg(d.clone())));
                        actions.add_action(&a);
                    };
                    let running = matches!(state, Some(RunState::Running));
                    add("start", state.is_none(), LibraryMsg::Start);
                    add("pause", running, LibraryMsg::Pause);
                    add(
                        "resume",
                        matches!(state, Some(RunState::Paused)),
                        LibraryMsg::Resume,
                    );
                    add("shutdown", running, LibraryMsg::ShutDown);
                    add(
                        "forceoff",
                        state.is_some_and(|s| s != RunState::Starting),
                        LibraryMsg::ForceOff,
                    );
                    add("display", state.is_some(), LibraryMsg::OpenDisplay);
                    add("settings", true, LibraryMsg::Settings);
                    add("delete", state.is_none(), LibraryMsg::Delete);
                    row.insert_action_group("vm", Some(&actions));
                    let menu = gio::Menu::new();
                    let power = gio::Menu::new();
                    if matches!(state, Some(RunState::Paused)) {
                        power.append(Some(&tr("action-resume")), Some("vm.resume"));
                    } else {
                        power.append(Some(&tr("action-pause")), Some("vm.pause"));
                    }
                    power.append(Some(&tr("action-shut-down")), Some("vm.shutdown"));
                    power.append(Some(&tr("action-force-off")), Some("vm.forceoff"));
                    menu.append_section(None, &power);
                    let other = gio::Menu::new();
                    other.append(Some(&tr("action-settings")), Some("vm.settings"));
                    other.append(Some(&tr("action-delete")), Some("vm.delete"));
                    menu.append_section(None, &other);
                    let more = gtk::MenuButton::new();
                    more.set_icon_name("view-more-symbolic");
                    more.set_tooltip_text(Some(&tr("action-more")));
                    crate::a11y::set_label(&more, &tr("action-more"));
                    more.set_valign(gtk::Align::Center);
                    more.add_css_class("flat");
                    more.set_menu_model(Some(&menu));
                    row.add_suffix(&more);
                }
                Entry::Broken { reason, .. } => {
                    row.set_title(&glib::markup_escape_text(&tr_args(
                        "library-broken",
                        &[(
                            "folder",
                            &dir.file_name().unwrap_or_default().to_string_lossy(),
                        )],
                    )));
                    row.set_subtitle(&glib::markup_escape_text(reason));
                    row.set_subtitle_lines(3);
                    let icon = gtk::Image::from_icon_name("dialog-warning-symbolic");
                    icon.add_css_class("warning");
                    icon.set_pixel_size(32);
                    icon.set_size_request(96, 60);
                    row.add_prefix(&icon);
                    let b = icon_button("user-trash-symbolic", &tr("action-delete"));
                    let s = sender.input_sender().clone();
                    let d = dir.clone();
                    b.connect_clicked(move |_| s.emit(LibraryMsg::Delete(d.clone())));
                    row.add_suffix(&b);
                }
            }
            self.list.append(&row);
        }
        let page = match (&self.store, self.entries.is_empty()) {
            (Err(_), _) => "error",
            (Ok(_), true) => "empty",
            (Ok(_), false) => "list",
        };
        self.stack.set_visible_child_name(page);
        self.notice.set_visible(self.kvm_problem.is_some());
        self.update_tray();
    }

    fn open_display(&mut self, dir: &Path, sender: &ComponentSender<Self>) {
        if let Some((_, c)) = self.displays.get(dir) {
            if c.widget().is_visible() {
                c.widget().present();
                return;
            }
        }
        let name = self.name_of(dir);
        let id = self.next_display;
        self.next_display += 1;
        let controller = Display::builder()
            .launch(DisplayInit {
                socket: runner::display_socket(dir),
                name,
                thumbnail: Some(dir.join(THUMBNAIL)),
                microphone: self
                    .config(dir)
                    .and_then(|c| c.devices.sound.map(|_| c.devices.microphone)),
            })
            .forward(sender.input_sender(), {
                let dir = dir.to_owned();
                move |asked| match asked {
                    DisplayOutput::Restart => LibraryMsg::Restart(dir.clone()),
                    DisplayOutput::Closed => LibraryMsg::DisplayClosed(dir.clone(), id),
                    DisplayOutput::Microphone(on) => LibraryMsg::Microphone(dir.clone(), on),
                }
            });
        controller
            .widget()
            .set_application(Some(&relm4::main_application()));
        controller.widget().present();
        // A window this replaces was closed by its user and is gone already.
        self.displays.insert(dir.to_owned(), (id, controller));
    }

    fn start(&mut self, dir: &Path, sender: &ComponentSender<Self>) {
        if self.running.contains_key(dir) {
            return;
        }
        let Some(config) = self.config(dir).cloned() else {
            self.toast(&tr("vm-broken-cannot-start"));
            return;
        };
        if !dir.is_dir() {
            self.toast(&crate::messages::store_error(
                &crate::store::StoreError::Gone(dir.to_owned()),
            ));
            self.reload();
            return;
        }
        // Only a build without virglrenderer (the Flatpak, for now) runs 3D VMs in 2D.
        if !phyllome_vmm::graphics_probe::BUILT_WITH_3D
            && config
                .devices
                .gpu
                .as_ref()
                .is_some_and(|g| !g.renderer.is_2d())
        {
            self.toast(&tr("vm-3d-later"));
        }
        self.running.insert(
            dir.to_owned(),
            Running {
                state: RunState::Starting,
                commands: None,
                name: config.name.clone(),
                network_down: false,
            },
        );
        let s = sender.input_sender().clone();
        let d = dir.to_owned();
        runner::launch(dir, &config, move |event| {
            s.emit(LibraryMsg::Runner(d.clone(), event));
        });
    }

    fn runner_event(&mut self, dir: PathBuf, event: RunnerEvent, sender: &ComponentSender<Self>) {
        let name = self.name_of(&dir);
        match event {
            RunnerEvent::Started(commands) => {
                if let Some(r) = self.running.get_mut(&dir) {
                    r.commands = Some(commands);
                    r.state = RunState::Running;
                }
                self.open_display(&dir, sender);
            }
            RunnerEvent::Failed(why) => {
                self.running.remove(&dir);
                self.toast(&tr_args(
                    "vm-start-failed",
                    &[("name", &name), ("reason", &why)],
                ));
            }
            RunnerEvent::Vm(VmEvent::Paused) => self.set_state(&dir, RunState::Paused),
            RunnerEvent::Vm(VmEvent::Resumed) => self.set_state(&dir, RunState::Running),
            RunnerEvent::Vm(VmEvent::Error(why)) => {
                self.toast(&tr_args("vm-error", &[("name", &name), ("reason", &why)]));
            }
            RunnerEvent::Vm(VmEvent::DiscChanged { drive, disc }) => {
                self.disc_changed(&dir, drive, disc);
            }
            RunnerEvent::Vm(VmEvent::DiscLocked { drive }) => {
                let t = adw::Toast::new(&glib::markup_escape_text(&tr_args(
                    "vm-disc-locked",
                    &[("name", &name), ("number", &(drive + 1).to_string())],
                )));
                t.set_timeout(0);
                t.set_button_label(Some(&tr("vm-disc-force")));
                let s = sender.input_sender().clone();
                let d = dir.clone();
                t.connect_button_clicked(move |_| {
                    s.emit(LibraryMsg::Live(
                        d.clone(),
                        VmCommand::EjectDisc { drive, force: true },
                    ));
                });
                self.toasts.add_toast(t);
            }
            RunnerEvent::Vm(VmEvent::GraphicsStopped(why)) => {
                eprintln!("phyllome: {name}: {why}");
                self.toast(&tr_args("vm-graphics-stopped", &[("name", &name)]));
                if let Some((_, c)) = self.displays.get(&dir) {
                    c.emit(DisplayInput::GraphicsStopped);
                }
            }
            RunnerEvent::Vm(VmEvent::NetworkDown(why)) => {
                eprintln!("phyllome: {name}: {why}");
                if let Some(r) = self.running.get_mut(&dir) {
                    r.network_down = true;
                }
                self.toast(&tr_args(
                    "vm-network-down",
                    &[("name", &name), ("reason", &why)],
                ));
            }
            RunnerEvent::Vm(VmEvent::Rebooted) => {
                // The VMM starts a new passt on reboot; it says again if that fails.
                if let Some(r) = self.running.get_mut(&dir) {
                    r.network_down = false;
                }
                if let Some((_, c)) = self.displays.get(&dir) {
                    c.emit(DisplayInput::Rebooted);
                }
            }
            RunnerEvent::Vm(VmEvent::Stopped(reason)) => {
                self.running.remove(&dir);
                // The window saves its thumbnail and goes; it says when, and only then
                // is its component dropped (DisplayClosed).
                if let Some((_, c)) = self.displays.get(&dir) {
                    c.emit(DisplayInput::Closing);
                }
                // Forcing off is what the user asked for: not worth a message.
                if !reason.is_clean() && reason != StopReason::ForcedOff {
                    self.toast(&tr_args(
                        "vm-stopped-unexpectedly",
                        &[("name", &name), ("reason", &stop_reason(&reason))],
                    ));
                }
                if self.quitting && self.running.is_empty() {
                    self.quit();
                }
            }
            RunnerEvent::Vm(_) => {}
        }
    }

    fn set_state(&mut self, dir: &Path, state: RunState) {
        if let Some(r) = self.running.get_mut(dir) {
            r.state = state;
        }
    }

    fn remember_window(&self) {
        let (width, height) = self.window.default_size();
        window_state::save(
            "library",
            WindowState {
                width,
                height,
                maximized: self.window.is_maximized(),
            },
        );
    }

    fn quit(&self) {
        self.remember_window();
        if let Some(t) = &self.tray {
            t.shutdown();
        }
        relm4::main_application().quit();
    }

    fn confirm_quit(&self, sender: &ComponentSender<Self>) {
        let dialog = adw::MessageDialog::new(
            Some(&self.window),
            Some(&tr("quit-running-title")),
            Some(&tr_args(
                "quit-running-body",
                &[("count", &self.running.len().to_string())],
            )),
        );
        dialog.add_response("cancel", &tr("quit-keep-open"));
        dialog.add_response("shutdown", &tr("quit-shut-down"));
        dialog.add_response("force", &tr("quit-force-off"));
        dialog.set_response_appearance("force", adw::ResponseAppearance::Destructive);
        dialog.set_response_appearance("shutdown", adw::ResponseAppearance::Suggested);
        dialog.set_default_response(Some("cancel"));
        dialog.set_close_response("cancel");
        let s = sender.input_sender().clone();
        dialog.connect_response(None, move |_, response| match response {
            "shutdown" => s.emit(LibraryMsg::QuitConfirmed(false)),
            "force" => s.emit(LibraryMsg::QuitConfirmed(true)),
            _ => {}
        });
        dialog.present();
    }

    fn confirm_delete(&self, dir: &Path, sender: &ComponentSender<Self>) {
        let broken = self.config(dir).is_none();
        let dialog = adw::MessageDialog::new(
            Some(&self.window),
            Some(&tr_args("delete-title", &[("name", &self.name_of(dir))])),
            Some(&tr(if broken {
                "delete-body-broken"
            } else {
                "delete-body"
            })),
        );
        dialog.add_response("cancel", &tr("wizard-cancel"));
        dialog.add_response("keep", &tr("delete-keep-disks"));
        dialog.add_response("all", &tr("delete-with-disks"));
        dialog.set_response_appearance("all", adw::ResponseAppearance::Destructive);
        dialog.set_default_response(Some("cancel"));
        dialog.set_close_response("cancel");
        let s = sender.input_sender().clone();
        let d = dir.to_owned();
        dialog.connect_response(None, move |_, response| match response {
            "keep" => s.emit(LibraryMsg::DeleteConfirmed(d.clone(), true)),
            "all" => s.emit(LibraryMsg::DeleteConfirmed(d.clone(), false)),
            _ => {}
        });
        dialog.present();
    }
}

/// Why a VM stopped, for the user.
fn stop_reason(r: &StopReason) -> String {
    match r {
        StopReason::TripleFault { .. } => tr("stop-triple-fault"),
        other => tr_args("stop-internal", &[("detail", &format!("{other:?}"))]),
    }
}

impl SimpleComponent for Library {
    type Init = LibraryInit;
    type Input = LibraryMsg;
    type Output = ();
    type Root = adw::ApplicationWindow;
    type Widgets = ();

    fn init_root() -> Self::Root {
        adw::ApplicationWindow::builder().build()
    }

    #[allow(clippy::too_many_lines, reason = "builds the window, top to bottom")]
    fn init(
        init: LibraryInit,
        window: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        gtk::Window::set_default_icon_name(crate::APP_ID);
        window.set_title(Some(&tr("app-name")));
        let remembered = window_state::load("library");
        let (w, h) = remembered.map_or((760, 560), |s| (s.width, s.height));
        window.set_default_size(w, h);
        if remembered.is_some_and(|s| s.maximized) {
            window.maximize();
        }

        let header = adw::HeaderBar::new();
        let add = gtk::Button::from_icon_name("list-add-symbolic");
        add.set_tooltip_text(Some(&tr("library-new")));
        crate::a11y::set_label(&add, &tr("library-new"));
        let s = sender.input_sender().clone();
        add.connect_clicked(move |_| s.emit(LibraryMsg::NewVm(None)));
        header.pack_start(&add);

        let problem = kvm_problem();
        let notice = gtk::Label::new(problem.as_deref());
        notice.set_wrap(true);
        notice.add_css_class("library-notice");
        notice.set_xalign(0.0);

        let empty = adw::StatusPage::new();
        empty.set_icon_name(Some(crate::APP_ID));
        empty.set_title(&tr("library-empty-title"));
        empty.set_description(Some(&tr("library-empty-description")));
        let create = gtk::Button::with_label(&tr("library-empty-create"));
        create.add_css_class("pill");
        create.add_css_class("suggested-action");
        create.set_halign(gtk::Align::Center);
        let s = sender.input_sender().clone();
        create.connect_clicked(move |_| s.emit(LibraryMsg::NewVm(None)));
        empty.set_child(Some(&create));

        let list = gtk::ListBox::new();
        list.add_css_class("boxed-list");
        list.set_selection_mode(gtk::SelectionMode::None);
        list.set_valign(gtk::Align::Start);
        let clamp = adw::Clamp::new();
        clamp.set_maximum_size(720);
        clamp.set_child(Some(&list));
        clamp.set_margin_top(24);
        clamp.set_margin_bottom(24);
        clamp.set_margin_start(12);
        clamp.set_margin_end(12);
        let scrolled = gtk::ScrolledWindow::new();
        scrolled.set_hscrollbar_policy(gtk::PolicyType::Never);
        scrolled.set_child(Some(&clamp));

        let store = Store::open(init.root.unwrap_or_else(Store::default_root))
            .map_err(|e| crate::messages::store_error(&e));
        let error = adw::StatusPage::new();
        error.set_icon_name(Some("dialog-error-symbolic"));
        error.set_title(&tr("library-unavailable"));
        if let Err(e) = &store {
            error.set_description(Some(&glib::markup_escape_text(e)));
        }

        let stack = gtk::Stack::new();
        stack.set_vexpand(true);
        stack.add_named(&empty, Some("empty"));
        stack.add_named(&scrolled, Some("list"));
        stack.add_named(&error, Some("error"));

        let content = gtk::Box::new(gtk::Orientation::Vertical, 0);
        content.append(&header);
        content.append(&notice);
        content.append(&stack);
        let toasts = adw::ToastOverlay::new();
        toasts.set_child(Some(&content));
        window.set_content(Some(&toasts));

        // Drop an installer image on the library: the wizard opens on it.
        let drop = gtk::DropTarget::new(gio::File::static_type(), gdk::DragAction::COPY);
        let s = sender.input_sender().clone();
        drop.connect_drop(move |_, value, _, _| {
            match value.get::<gio::File>().ok().and_then(|f| f.path()) {
                Some(path) => {
                    s.emit(LibraryMsg::NewVm(Some(path)));
                    true
                }
                None => false,
            }
        });
        window.add_controller(drop);
        let s = sender.input_sender().clone();
        window.connect_close_request(move |_| {
            s.emit(LibraryMsg::CloseRequested);
            glib::Propagation::Stop
        });
        // Ctrl+N: a new VM.
        let keys = gtk::EventControllerKey::new();
        let s = sender.input_sender().clone();
        keys.connect_key_pressed(move |_, key, _, state| {
            if state.contains(gdk::ModifierType::CONTROL_MASK)
                && matches!(key, gdk::Key::n | gdk::Key::N)
            {
                s.emit(LibraryMsg::NewVm(None));
                return glib::Propagation::Stop;
            }
            glib::Propagation::Proceed
        });
        window.add_controller(keys);

        // The 3D probe, once, off the main thread.
        let s = sender.input_sender().clone();
        std::thread::spawn(move || s.emit(LibraryMsg::Graphics(graphics::probe())));

        let tray = init.tray.then(|| {
            let s = sender.input_sender().clone();
            let failed = sender.input_sender().clone();
            tray::spawn(
                Tray::new(move |a| s.emit(LibraryMsg::Tray(a))),
                move |why| {
                    eprintln!("phyllome: the tray icon is not available: {why}");
                    failed.emit(LibraryMsg::Tray(TrayAction::HostPresent(false)));
                },
            )
        });

        let mut model = Library {
            store,
            entries: Vec::new(),
            running: HashMap::new(),
            graphics: None,
            window: window.clone(),
            stack,
            list,
            toasts,
            notice,
            wizard: None,
            displays: HashMap::new(),
            next_display: 0,
            settings: None,
            tray,
            tray_host: false,
            quitting: false,
            kvm_problem: problem,
        };
        model.reload();
        model.rebuild(&sender);
        if let Some(iso) = init.install {
            sender.input(LibraryMsg::NewVm(Some(iso)));
        }
        ComponentParts { model, widgets: () }
    }

    fn update(&mut self, msg: LibraryMsg, sender: ComponentSender<Self>) {
        match msg {
            LibraryMsg::Reload => self.reload(),
            LibraryMsg::NewVm(iso) => {
                if let Some(w) = &self.wizard {
                    w.widget().present();
                    if let Some(iso) = iso {
                        w.emit(WizardMsg::IsoChosen(iso));
                    }
                    return;
                }
                let Some(store) = self.store().cloned() else {
                    return;
                };
                self.window.present();
                let wizard = Wizard::builder()
                    .launch(WizardInit {
                        store,
                        iso,
                        graphics: self.graphics.clone(),
                        parent: Some(self.window.clone().upcast()),
                    })
                    .forward(sender.input_sender(), |o| match o {
                        WizardOutput::Created(dir) => LibraryMsg::Created(dir),
                        WizardOutput::Closed => LibraryMsg::WizardClosed,
                    });
                self.wizard = Some(wizard);
                return;
            }
            LibraryMsg::WizardClosed => {
                self.wizard = None;
                return;
            }
            LibraryMsg::Created(dir) => {
                self.reload();
                self.start(&dir, &sender);
            }
            LibraryMsg::Start(dir) => self.start(&dir, &sender),
            LibraryMsg::ShutDown(dir) => {
                self.send(&dir, VmCommand::PowerButton);
                self.set_state(&dir, RunState::ShuttingDown);
            }
            LibraryMsg::ForceOff(dir) => self.send(&dir, VmCommand::ForceOff),
            LibraryMsg::Restart(dir) => self.send(&dir, VmCommand::Reset),
            LibraryMsg::DisplayClosed(dir, id) => {
                if self.displays.get(&dir).is_some_and(|(open, _)| *open == id) {
                    self.displays.remove(&dir);
                }
                return;
            }
            LibraryMsg::Pause(dir) => self.send(&dir, VmCommand::Pause),
            LibraryMsg::Resume(dir) => self.send(&dir, VmCommand::Resume),
            LibraryMsg::OpenDisplay(dir) => {
                self.open_display(&dir, &sender);
                return;
            }
            LibraryMsg::Settings(dir) => {
                let (Some(store), Some(config)) =
                    (self.store().cloned(), self.config(&dir).cloned())
                else {
                    return;
                };
                let settings = Settings::builder()
                    .launch(SettingsInit {
                        store,
                        dir: dir.clone(),
                        config,
                        running: self.running.contains_key(&dir),
                        graphics: self.graphics.clone(),
                        parent: Some(self.window.clone().upcast()),
                    })
                    .forward(sender.input_sender(), move |o| match o {
                        SettingsOutput::Saved => LibraryMsg::Reload,
                        SettingsOutput::Live(command) => LibraryMsg::Live(dir.clone(), command),
                    });
                self.settings = Some(settings);
                return;
            }
            LibraryMsg::Delete(dir) => {
                self.confirm_delete(&dir, &sender);
                return;
            }
            LibraryMsg::DeleteConfirmed(dir, keep) => {
                if self.running.contains_key(&dir) {
                    return;
                }
                let result = self.store().map(|s| s.delete(&dir, keep));
                if let Some(Err(e)) = result {
                    self.toast(&crate::messages::store_error(&e));
                }
                self.reload();
            }
            LibraryMsg::Runner(dir, event) => self.runner_event(dir, event, &sender),
            LibraryMsg::Graphics(g) => {
                if let Some(w) = &self.wizard {
                    w.emit(WizardMsg::Graphics(g.clone()));
                }
                self.graphics = Some(g);
                return;
            }
            LibraryMsg::Tray(action) => match action {
                TrayAction::ToggleWindow => {
                    if self.window.is_visible() {
                        self.window.set_visible(false);
                    } else {
                        self.window.present();
                    }
                }
                TrayAction::Pause(d) => self.send(&d, VmCommand::Pause),
                TrayAction::Resume(d) => self.send(&d, VmCommand::Resume),
                TrayAction::ShutDown(d) => {
                    self.send(&d, VmCommand::PowerButton);
                    self.set_state(&d, RunState::ShuttingDown);
                }
                TrayAction::ForceOff(d) => self.send(&d, VmCommand::ForceOff),
                TrayAction::HostPresent(present) => self.tray_host = present,
                TrayAction::Quit => {
                    if self.running.is_empty() {
                        self.quit();
                    } else {
                        self.window.present();
                        self.confirm_quit(&sender);
                    }
                }
            },
            LibraryMsg::CloseRequested => {
                if self.running.is_empty() {
                    self.quit();
                } else if self.tray_host {
                    self.remember_window();
                    self.window.set_visible(false);
                    self.toast(&tr("library-still-running"));
                } else {
                    self.confirm_quit(&sender);
                }
            }
            LibraryMsg::QuitConfirmed(force) => {
                self.quitting = true;
                let dirs: Vec<PathBuf> = self.running.keys().cloned().collect();
                for d in dirs {
                    if force {
                        self.send(&d, VmCommand::ForceOff);
                    } else {
                        self.send(&d, VmCommand::PowerButton);
                        self.set_state(&d, RunState::ShuttingDown);
                    }
                }
                if self.running.is_empty() {
                    self.quit();
                }
            }
            LibraryMsg::Toast(text) => {
                self.toast(&text);
                return;
            }
            LibraryMsg::Live(dir, command) => {
                self.send(&dir, command);
                return;
            }
            LibraryMsg::Microphone(dir, on) => {
                self.microphone(&dir, on);
                return;
            }
        }
        self.rebuild(&sender);
    }
}
