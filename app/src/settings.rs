//! A VM's settings window: resources, disks (add, remove, eject the installer), CD/DVD
//! drives (eject, insert, add), graphics, network and boot source. Each change is checked and saved
//! at once (atomically, by the store); a change that would not start is refused with the
//! reason, and the definition on disk stays as it was. Changes to a running VM apply at its
//! next start, as the window says, except discs: those change in the running VM too, as in
//! a real drive.

use crate::graphics::Graphics3d;
use crate::i18n::{tr, tr_args};
use crate::store::Store;
use phyllome_vmm::config::{CdromConfig, DiskConfig, GpuConfig, Renderer};
use phyllome_vmm::network::{Mac, NetMode};
use phyllome_vmm::{VmCommand, VmConfig};
use relm4::adw::prelude::*;
use relm4::gtk::glib;
use relm4::prelude::*;
use std::path::PathBuf;

mod network;
mod sound;

/// What the window opens on.
#[derive(Debug)]
pub struct SettingsInit {
    /// The library.
    pub store: Store,
    /// The VM's folder.
    pub dir: PathBuf,
    /// Its definition.
    pub config: VmConfig,
    /// It runs now (changes apply at the next start).
    pub running: bool,
    /// The 3D probe's answer, if known.
    pub graphics: Option<Graphics3d>,
    /// The library window.
    pub parent: Option<gtk::Window>,
}

/// Messages to the window.
#[derive(Debug)]
pub enum SettingsMsg {
    /// The name's apply button.
    Name(String),
    /// vCPUs.
    Cpus(u32),
    /// Memory, MiB.
    Memory(u64),
    /// Remove the disk at this index.
    RemoveDisk(usize),
    /// Detach the installer image.
    EjectInstaller,
    /// Open the file chooser for a disk.
    ChooseDisk,
    /// Attach this image.
    AddDisk(PathBuf),
    /// Take the disc out of this CD drive.
    EjectDisc(usize),
    /// Open the file chooser for a disc for this drive.
    ChooseDisc(usize),
    /// Put this image in this drive.
    InsertDisc(usize, PathBuf),
    /// Add an empty CD drive.
    AddDrive,
    /// The 3D switch.
    ThreeD(bool),
    /// The network switch.
    Network(bool),
    /// The forwarded ports' text, applied.
    Forwards(String),
    /// The sound card's switch.
    Sound(bool),
    /// The microphone's switch.
    Microphone(bool),
    /// The boot entries' apply buttons.
    Boot,
}

/// What the window tells the library.
#[derive(Debug)]
pub enum SettingsOutput {
    /// The definition changed on disk.
    Saved,
    /// A change for the running VM too (a disc, the microphone).
    Live(VmCommand),
}

/// The settings window.
#[derive(Debug)]
pub struct Settings {
    store: Store,
    dir: PathBuf,
    config: VmConfig,
    window: adw::PreferencesWindow,
    disks: adw::PreferencesGroup,
    disk_rows: Vec<adw::ActionRow>,
    drives: adw::PreferencesGroup,
    drive_rows: Vec<adw::ActionRow>,
    /// The VM runs now: disc changes go to it too.
    running: bool,
    forwards: adw::EntryRow,
    /// The microphone's row, usable only with a sound card.
    microphone: adw::ActionRow,
    kernel: adw::EntryRow,
    initrd: adw::EntryRow,
    cmdline: adw::EntryRow,
    chooser: Option<gtk::FileChooserNative>,
    /// What this computer can draw (the renderer 3D turns on).
    graphics: Option<Graphics3d>,
}

impl Settings {
    /// Checks and saves `changed`; on failure says why and keeps the old definition.
    fn apply(&mut self, changed: VmConfig, sender: &ComponentSender<Self>) -> bool {
        let result = changed
            .validate()
            .map_err(|e| tr_args("settings-invalid", &[("reason", &e.to_string())]))
            .and_then(|()| {
                self.store
                    .save(&self.dir, &changed)
                    .map_err(|e| crate::messages::store_error(&e))
            });
        match result {
            Ok(()) => {
                self.config = changed;
                let _ = sender.output(SettingsOutput::Saved);
                true
            }
            Err(why) => {
                self.window
                    .add_toast(adw::Toast::new(&glib::markup_escape_text(&why)));
                false
            }
        }
    }

    fn show_disks(&mut self, sender: &ComponentSender<Self>) {
        for row in self.disk_rows.drain(..) {
            self.disks.remove(&row);
        }
        for (i, disk) in self.config.disks.iter().enumerate() {
            let row = adw::ActionRow::new();
            row.set_title(&glib::markup_escape_text(
                &disk.path.file_name().unwrap_or_default().to_string_lossy(),
            ));
            let mut subtitle = disk.path.display().to_string();
            if disk.readonly {
                subtitle = tr_args("settings-disk-readonly", &[("path", &subtitle)]);
            }
            row.set_subtitle(&glib::markup_escape_text(&subtitle));
            let installer = self.config.about.installer.as_ref() == Some(&disk.path);
            let button = if installer {
                let b = gtk::Button::with_label(&tr("settings-eject"));
                let s = sender.input_sender().clone();
                b.connect_clicked(move |_| s.emit(SettingsMsg::EjectInstaller));
                b
            } else {
                let b = gtk::Button::from_icon_name("user-trash-symbolic");
                b.set_tooltip_text(Some(&tr("settings-remove-disk")));
                crate::a11y::set_label(&b, &tr("settings-remove-disk"));
                let s = sender.input_sender().clone();
                b.connect_clicked(move |_| s.emit(SettingsMsg::RemoveDisk(i)));
                b
            };
            button.set_valign(gtk::Align::Center);
            button.add_css_class("flat");
            row.add_suffix(&button);
            self.disks.add(&row);
            self.disk_rows.push(row);
        }
    }
}

impl Settings {
    fn show_drives(&mut self, sender: &ComponentSender<Self>) {
        for row in self.drive_rows.drain(..) {
            self.drives.remove(&row);
        }
        for (i, drive) in self.config.cdroms.iter().enumerate() {
            let row = adw::ActionRow::new();
            let number = (i + 1).to_string();
            match &drive.path {
                Some(path) => {
                    row.set_title(&glib::markup_escape_text(
                        &path.file_name().unwrap_or_default().to_string_lossy(),
                    ));
                    row.set_subtitle(&glib::markup_escape_text(&tr_args(
                        "settings-cdrom-drive-holds",
                        &[("number", &number), ("path", &path.display().to_string())],
                    )));
                    let b = gtk::Button::with_label(&tr("settings-eject"));
                    let s = sender.input_sender().clone();
                    b.connect_clicked(move |_| s.emit(SettingsMsg::EjectDisc(i)));
                    b.set_valign(gtk::Align::Center);
                    row.add_suffix(&b);
                }
                None => {
                    row.set_title(&tr("settings-cdrom-empty"));
                    row.set_subtitle(&tr_args("settings-cdrom-drive", &[("number", &number)]));
                }
            }
            let b = gtk::Button::with_label(&tr("settings-cdrom-insert"));
            let s = sender.input_sender().clone();
            b.connect_clicked(move |_| s.emit(SettingsMsg::ChooseDisc(i)));
            b.set_valign(gtk::Align::Center);
            b.add_css_class("flat");
            row.add_suffix(&b);
            self.drives.add(&row);
            self.drive_rows.push(row);
        }
    }

    /// Opens GTK's file chooser titled `title`; the chosen file comes back as `message(path)`.
    fn choose_file(
        &mut self,
        title: &str,
        sender: &ComponentSender<Self>,
        message: impl Fn(PathBuf) -> SettingsMsg + 'static,
    ) {
        let chooser = gtk::FileChooserNative::new(
            Some(&tr(title)),
            Some(&self.window),
            gtk::FileChooserAction::Open,
            Some(&tr("wizard-open")),
            Some(&tr("wizard-cancel")),
        );
        chooser.set_modal(true);
        let s = sender.input_sender().clone();
        chooser.connect_response(move |d, r| {
            if r == gtk::ResponseType::Accept {
                if let Some(p) = d.file().and_then(|f| f.path()) {
                    s.emit(message(p));
                }
            }
        });
        chooser.show();
        self.chooser = Some(chooser);
    }

    /// Saves a change and, while the VM runs, makes it there too; whether it was saved.
    fn apply_live(
        &mut self,
        changed: VmConfig,
        live: VmCommand,
        sender: &ComponentSender<Self>,
    ) -> bool {
        let saved = self.apply(changed, sender);
        if saved && self.running {
            let _ = sender.output(SettingsOutput::Live(live));
        }
        saved
    }

    /// Saves a disc change, live too, and shows the drives again.
    fn change_disc(&mut self, changed: VmConfig, live: VmCommand, sender: &ComponentSender<Self>) {
        if self.apply_live(changed, live, sender) {
            self.show_drives(sender);
        }
    }
}

fn spin(min: f64, max: f64, step: f64, value: f64) -> gtk::SpinButton {
    let s = gtk::SpinButton::with_range(min, max, step);
    s.set_value(value);
    s.set_valign(gtk::Align::Center);
    s.set_numeric(true);
    s
}

fn entry(title: &str, text: &str) -> adw::EntryRow {
    let e = adw::EntryRow::new();
    e.set_title(title);
    e.set_text(text);
    e.set_show_apply_button(true);
    e
}

impl SimpleComponent for Settings {
    type Init = SettingsInit;
    type Input = SettingsMsg;
    type Output = SettingsOutput;
    type Root = adw::PreferencesWindow;
    type Widgets = ();

    fn init_root() -> Self::Root {
        adw::PreferencesWindow::new()
    }

    #[allow(clippy::too_many_lines, reason = "builds the pages, top to bottom")]
    fn init(
        init: SettingsInit,
        window: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let c = &init.config;
        window.set_title(Some(&tr_args("settings-title", &[("name", &c.name)])));
        window.set_transient_for(init.parent.as_ref());
        window.set_modal(true);
        window.set_default_size(600, 560);

        // General.
        let general = adw::PreferencesPage::new();
        general.set_title(&tr("settings-general"));
        general.set_icon_name(Some("emblem-system-symbolic"));
        let res = adw::PreferencesGroup::new();
        res.set_title(&tr("wizard-resources-title"));
        if init.running {
            res.set_description(Some(&tr("settings-next-start")));
        }
        let name = entry(&tr("wizard-name"), &c.name);
        let s = sender.input_sender().clone();
        name.connect_apply(move |e| s.emit(SettingsMsg::Name(e.text().to_string())));
        res.add(&name);
        let host = crate::resources::probe_host(&init.dir).ok();
        let cpus = spin(
            1.0,
            f64::from(host.map_or(64, |h| h.cpus.max(1))),
            1.0,
            f64::from(c.machine.cpus),
        );
        let s = sender.input_sender().clone();
        cpus.connect_value_changed(move |v| {
            s.emit(SettingsMsg::Cpus(
                u32::try_from(v.value_as_int()).unwrap_or(1),
            ));
        });
        crate::a11y::set_label(&cpus, &tr("wizard-cpus"));
        let row = adw::ActionRow::new();
        row.set_title(&tr("wizard-cpus"));
        row.add_suffix(&cpus);
        res.add(&row);
        #[allow(clippy::cast_precision_loss, reason = "MiB counts are small")]
        let memory = spin(
            256.0,
            host.map_or(65536.0, |h| (h.memory >> 20).max(256) as f64),
            256.0,
            c.machine.memory_mib as f64,
        );
        let s = sender.input_sender().clone();
        memory.connect_value_changed(move |v| {
            s.emit(SettingsMsg::Memory(
                u64::try_from(v.value_as_int()).unwrap_or(256),
            ));
        });
        crate::a11y::set_label(&memory, &tr("wizard-memory"));
        let row = adw::ActionRow::new();
        row.set_title(&tr("wizard-memory"));
        row.set_subtitle(&tr("wizard-memory-unit"));
        row.add_suffix(&memory);
        res.add(&row);
        general.add(&res);
        window.add(&general);

        // Disks.
        let disks_page = adw::PreferencesPage::new();
        disks_page.set_title(&tr("settings-disks"));
        disks_page.set_icon_name(Some("drive-harddisk-symbolic"));
        let disks = adw::PreferencesGroup::new();
        disks.set_title(&tr("settings-disks"));
        let add = gtk::Button::with_label(&tr("settings-add-disk"));
        add.add_css_class("flat");
        let s = sender.input_sender().clone();
        add.connect_clicked(move |_| s.emit(SettingsMsg::ChooseDisk));
        disks.set_header_suffix(Some(&add));
        disks_page.add(&disks);
        let drives = adw::PreferencesGroup::new();
        drives.set_title(&tr("settings-cdroms"));
        if init.running {
            drives.set_description(Some(&tr("settings-cdrom-live")));
        }
        let add = gtk::Button::with_label(&tr("settings-add-cdrom"));
        add.add_css_class("flat");
        let s = sender.input_sender().clone();
        add.connect_clicked(move |_| s.emit(SettingsMsg::AddDrive));
        drives.set_header_suffix(Some(&add));
        disks_page.add(&drives);
        window.add(&disks_page);

        // Graphics.
        let gfx_page = adw::PreferencesPage::new();
        gfx_page.set_title(&tr("settings-graphics"));
        gfx_page.set_icon_name(Some("video-display-symbolic"));
        let gfx = adw::PreferencesGroup::new();
        gfx.set_title(&tr("wizard-graphics-title"));
        let three_d_row = adw::ActionRow::new();
        three_d_row.set_title(&tr("wizard-3d"));
        let three_d = gtk::Switch::new();
        three_d.set_valign(gtk::Align::Center);
        let on = c.devices.gpu.as_ref().is_some_and(|g| !g.renderer.is_2d());
        three_d.set_active(on);
        match &init.graphics {
            Some(Graphics3d::Available { renderer, .. }) => {
                three_d_row.set_subtitle(&glib::markup_escape_text(&tr_args(
                    "wizard-3d-available",
                    &[("renderer", renderer)],
                )));
            }
            Some(Graphics3d::Unavailable(why)) => {
                three_d_row.set_subtitle(&glib::markup_escape_text(why));
                // Turning it off stays possible; turning it on does not.
                three_d.set_sensitive(on);
            }
            None => three_d_row.set_subtitle(&tr("wizard-3d-probing")),
        }
        let s = sender.input_sender().clone();
        three_d.connect_active_notify(move |sw| s.emit(SettingsMsg::ThreeD(sw.is_active())));
        three_d_row.add_suffix(&three_d);
        three_d_row.set_activatable_widget(Some(&three_d));
        gfx.add(&three_d_row);
        if let Some(vulkan) = init.graphics.as_ref().and_then(Graphics3d::vulkan_sentence) {
            let row = adw::ActionRow::new();
            row.set_title(&tr("wizard-vulkan"));
            row.set_subtitle(&glib::markup_escape_text(&vulkan));
            gfx.add(&row);
        }
        gfx_page.add(&gfx);
        window.add(&gfx_page);

        let s = sender.input_sender().clone();
        let t = sender.input_sender().clone();
        let net = network::page(
            &c.network,
            init.running,
            move |on| s.emit(SettingsMsg::Network(on)),
            move |text| t.emit(SettingsMsg::Forwards(text)),
        );
        window.add(&net.page);

        let s = sender.input_sender().clone();
        let t = sender.input_sender().clone();
        let sound = sound::page(
            &c.devices,
            init.running,
            move |on| s.emit(SettingsMsg::Sound(on)),
            move |on| t.emit(SettingsMsg::Microphone(on)),
        );
        window.add(&sound.page);

        // Boot.
        let boot_page = adw::PreferencesPage::new();
        boot_page.set_title(&tr("settings-boot"));
        boot_page.set_icon_name(Some("system-run-symbolic"));
        let boot = adw::PreferencesGroup::new();
        boot.set_title(&tr("settings-boot"));
        boot.set_description(Some(&tr("settings-boot-description")));
        let kernel = entry(&tr("wizard-kernel"), &c.boot.kernel.display().to_string());
        let initrd = entry(
            &tr("wizard-initrd"),
            &c.boot
                .initrd
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        );
        let cmdline = entry(
            &tr("wizard-cmdline"),
            c.boot.cmdline.as_deref().unwrap_or_default(),
        );
        for e in [&kernel, &initrd, &cmdline] {
            let s = sender.input_sender().clone();
            e.connect_apply(move |_| s.emit(SettingsMsg::Boot));
            boot.add(e);
        }
        // A VM that boots firmware shows which, and where its variables are; its kernel
        // fields stay hidden (a firmware VM starts what is on its disks).
        if let Some(firmware) = &c.boot.firmware {
            boot.set_description(None);
            for e in [&kernel, &initrd, &cmdline] {
                e.set_visible(false);
            }
            let row = adw::ActionRow::new();
            row.set_title(&glib::markup_escape_text(&tr_args(
                "settings-boot-firmware",
                &[("path", &firmware.display().to_string())],
            )));
            if let Some(vars) = &c.boot.firmware_vars {
                row.set_subtitle(&glib::markup_escape_text(&tr_args(
                    "settings-boot-vars",
                    &[("path", &vars.display().to_string())],
                )));
            }
            row.add_css_class("property");
            boot.add(&row);
        }
        boot_page.add(&boot);
        window.add(&boot_page);

        let mut model = Settings {
            store: init.store,
            dir: init.dir,
            config: init.config,
            window: window.clone(),
            disks,
            disk_rows: Vec::new(),
            drives,
            drive_rows: Vec::new(),
            running: init.running,
            forwards: net.forwards,
            microphone: sound.microphone,
            kernel,
            initrd,
            cmdline,
            chooser: None,
            graphics: init.graphics,
        };
        model.show_disks(&sender);
        model.show_drives(&sender);
        window.present();
        ComponentParts { model, widgets: () }
    }

    fn update(&mut self, msg: SettingsMsg, sender: ComponentSender<Self>) {
        let mut c = self.config.clone();
        match msg {
            SettingsMsg::Name(name) => {
                let name = name.trim().to_owned();
                let taken = self.store.list().unwrap_or_default().iter().any(|e| {
                    matches!(e, crate::store::Entry::Vm { dir, config }
                        if *dir != self.dir && config.name.trim().eq_ignore_ascii_case(&name))
                });
                let problem = if name.is_empty() {
                    Some(tr("wizard-name-empty"))
                } else if taken {
                    Some(tr_args("wizard-name-taken", &[("name", &name)]))
                } else {
                    None
                };
                if let Some(why) = problem {
                    self.window.add_toast(adw::Toast::new(&why));
                    return;
                }
                c.name = name;
                self.apply(c, &sender);
            }
            SettingsMsg::Cpus(n) => {
                c.machine.cpus = n;
                self.apply(c, &sender);
            }
            SettingsMsg::Memory(m) => {
                c.machine.memory_mib = m;
                self.apply(c, &sender);
            }
            SettingsMsg::RemoveDisk(i) => {
                if i < c.disks.len() {
                    // The image file stays: removing a disk only detaches it.
                    c.disks.remove(i);
                    if self.apply(c, &sender) {
                        self.show_disks(&sender);
                    }
                }
            }
            SettingsMsg::EjectInstaller => {
                if let Some(iso) = c.about.installer.take() {
                    c.disks.retain(|d| d.path != iso);
                    if self.apply(c, &sender) {
                        self.show_disks(&sender);
                    }
                }
            }
            SettingsMsg::ChooseDisk => {
                self.choose_file("settings-add-disk", &sender, SettingsMsg::AddDisk);
            }
            SettingsMsg::AddDisk(path) => {
                let iso = path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("iso"));
                // A disc image goes in a new CD drive, where installers look for it.
                if iso {
                    c.cdroms.push(CdromConfig { path: Some(path) });
                    if self.apply(c, &sender) {
                        self.show_drives(&sender);
                    }
                    return;
                }
                c.disks.push(DiskConfig {
                    path,
                    readonly: false,
                    format: None,
                    queues: 1,
                    cache: phyllome_vmm::devices::virtio::blk::CacheMode::Writeback,
                });
                if self.apply(c, &sender) {
                    self.show_disks(&sender);
                }
            }
            SettingsMsg::AddDrive => {
                c.cdroms.push(CdromConfig { path: None });
                if self.apply(c, &sender) {
                    self.show_drives(&sender);
                }
            }
            SettingsMsg::EjectDisc(drive) => {
                if let Some(d) = c.cdroms.get_mut(drive) {
                    d.path = None;
                    self.change_disc(
                        c,
                        VmCommand::EjectDisc {
                            drive,
                            force: false,
                        },
                        &sender,
                    );
                }
            }
            SettingsMsg::InsertDisc(drive, path) => {
                if let Some(d) = c.cdroms.get_mut(drive) {
                    d.path = Some(path.clone());
                    self.change_disc(c, VmCommand::InsertDisc { drive, path }, &sender);
                }
            }
            SettingsMsg::ChooseDisc(drive) => {
                self.choose_file("settings-cdrom-insert", &sender, move |p| {
                    SettingsMsg::InsertDisc(drive, p)
                });
            }
            SettingsMsg::ThreeD(on) => {
                let g = c.devices.gpu.get_or_insert(GpuConfig {
                    width: crate::runner::DEFAULT_DISPLAY.0,
                    height: crate::runner::DEFAULT_DISPLAY.1,
                    dump_scanout: None,
                    display_socket: None,
                    renderer: Renderer::TwoD,
                });
                g.renderer = match (&self.graphics, on) {
                    (_, false) => Renderer::TwoD,
                    (Some(found), true) => found.renderer_when_on(),
                    (None, true) => Renderer::Virgl,
                };
                self.apply(c, &sender);
            }
            SettingsMsg::Network(on) => {
                c.network.mode = if on { NetMode::Passt } else { NetMode::None };
                if on && c.network.mac.is_none() {
                    c.network.mac = Some(Mac::random());
                }
                self.apply(c, &sender);
            }
            SettingsMsg::Sound(on) => {
                c.devices = sound::with_sound(&c.devices, on);
                if self.apply(c, &sender) {
                    self.microphone.set_sensitive(on);
                }
            }
            SettingsMsg::Microphone(on) => {
                c.devices.microphone = on;
                self.apply_live(c, VmCommand::Microphone(on), &sender);
            }
            SettingsMsg::Forwards(text) => match network::parse_forwards(&text) {
                Ok(forwards) => {
                    c.network.forward = forwards;
                    if self.apply(c, &sender) {
                        self.forwards
                            .set_text(&network::forwards_text(&self.config.network.forward));
                    }
                }
                Err(why) => self
                    .window
                    .add_toast(adw::Toast::new(&glib::markup_escape_text(
                        &network::forwards_refused(&why),
                    ))),
            },
            SettingsMsg::Boot => {
                let path = |t: glib::GString| {
                    let t = t.trim().to_owned();
                    (!t.is_empty()).then(|| PathBuf::from(t))
                };
                let Some(kernel) = path(self.kernel.text()) else {
                    self.window
                        .add_toast(adw::Toast::new(&tr("settings-kernel-needed")));
                    return;
                };
                c.boot.kernel = kernel;
                c.boot.initrd = path(self.initrd.text());
                let cmd = self.cmdline.text().trim().to_owned();
                c.boot.cmdline = (!cmd.is_empty()).then_some(cmd);
                if self.apply(c, &sender) {
                    self.window
                        .add_toast(adw::Toast::new(&tr("settings-saved")));
                }
            }
        }
    }
}
