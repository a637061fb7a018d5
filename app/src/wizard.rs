//! The install wizard: one window with a stack of pages, as GNOME Boxes has: the source (an
//! installer image chosen, dropped or given on the command line; or, under "Advanced", a
//! kernel), the resources (suggested from the OS, bounded by this computer), the graphics
//! (3D when the host can render, and why not when it cannot), and a summary; then Create
//! makes the VM ([`crate::new_vm`]) off the main thread, with progress. Back and Cancel work
//! at every step; Enter goes on, Escape cancels, Alt+Left goes back.

use crate::graphics::Graphics3d;
use crate::i18n::{tr, tr_args};
use crate::iso::{self, Detected};
use crate::new_vm::{source_for_iso, unique_name, NewVm, Source, Step, Unstartable};
use crate::resources::{self, Host, Resources};
use crate::store::{Entry, Store};
use phyllome_vmm::config::Renderer;
use phyllome_vmm::devices::virtio::blk::ImageFormat;
use relm4::adw::prelude::*;
use relm4::gtk::{gdk, gio, glib};
use relm4::prelude::*;
use std::path::{Path, PathBuf};

/// One GiB.
const GIB: u64 = 1 << 30;

/// The pages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Page {
    Source,
    Resources,
    Graphics,
    Summary,
    Creating,
}

impl Page {
    fn name(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Resources => "resources",
            Self::Graphics => "graphics",
            Self::Summary => "summary",
            Self::Creating => "creating",
        }
    }
    fn back(self) -> Option<Self> {
        match self {
            Self::Source | Self::Creating => None,
            Self::Resources => Some(Self::Source),
            Self::Graphics => Some(Self::Resources),
            Self::Summary => Some(Self::Graphics),
        }
    }
    fn number(self) -> u32 {
        match self {
            Self::Source => 1,
            Self::Resources => 2,
            Self::Graphics => 3,
            Self::Summary | Self::Creating => 4,
        }
    }
}

/// What the wizard opens with.
#[derive(Debug)]
pub struct WizardInit {
    /// The library.
    pub store: Store,
    /// An installer image to start from (a file given to the app, or dropped on it).
    pub iso: Option<PathBuf>,
    /// The 3D probe's answer, if it came already.
    pub graphics: Option<Graphics3d>,
    /// The library window.
    pub parent: Option<gtk::Window>,
}

/// Messages to the wizard.
#[derive(Debug)]
pub enum WizardMsg {
    /// Open the file chooser.
    ChooseIso,
    /// An image was chosen or dropped.
    IsoChosen(PathBuf),
    /// The image was read.
    Detected(PathBuf, Result<Detected, String>),
    /// A field changed: check the page again.
    Changed,
    /// Next (or Create on the summary).
    Next,
    /// Back.
    Back,
    /// Cancel, or the window's close button.
    Cancel,
    /// The 3D probe answered.
    Graphics(Graphics3d),
    /// Creation reached a step.
    Progress(Step),
    /// Creation ended.
    Done(Result<(), String>),
}

/// What the wizard tells the library.
#[derive(Debug)]
pub enum WizardOutput {
    /// A VM was made in this folder: start it and open its display.
    Created(PathBuf),
    /// The wizard closed.
    Closed,
}

/// The source page's state.
#[derive(Debug, Clone)]
enum IsoState {
    None,
    Reading(PathBuf),
    Found(PathBuf, Detected),
    Bad(String),
}

/// The wizard's widgets that change.
#[derive(Debug)]
struct Widgets {
    window: adw::Window,
    title: adw::WindowTitle,
    stack: gtk::Stack,
    back: gtk::Button,
    next: gtk::Button,
    iso_row: adw::ActionRow,
    iso_icon: gtk::Image,
    kernel: adw::EntryRow,
    initrd: adw::EntryRow,
    cmdline: adw::EntryRow,
    source_error: gtk::Label,
    name: adw::EntryRow,
    cpus: gtk::SpinButton,
    memory: gtk::SpinButton,
    disk: gtk::SpinButton,
    format: adw::ComboRow,
    resources_error: gtk::Label,
    three_d: gtk::Switch,
    three_d_row: adw::ActionRow,
    vulkan_row: adw::ActionRow,
    summary: gtk::ListBox,
    summary_error: gtk::Label,
    progress: gtk::ProgressBar,
    progress_label: gtk::Label,
}

/// The wizard.
#[derive(Debug)]
pub struct Wizard {
    store: Store,
    host: Option<Host>,
    page: Page,
    iso: IsoState,
    graphics: Option<Graphics3d>,
    /// The choices once the summary is reached.
    plan: Option<NewVm>,
    /// The folder being made (removed again if creation fails).
    creating: Option<PathBuf>,
    chooser: Option<gtk::FileChooserNative>,
    /// The resources were suggested for this image already (the user's edits stay).
    suggested_for: Option<PathBuf>,
    w: Widgets,
}

fn group(title: &str, description: Option<&str>) -> adw::PreferencesGroup {
    let g = adw::PreferencesGroup::new();
    g.set_title(title);
    if let Some(d) = description {
        g.set_description(Some(d));
    }
    g
}

fn error_label() -> gtk::Label {
    let l = gtk::Label::new(None);
    l.add_css_class("error");
    l.set_wrap(true);
    l.set_xalign(0.0);
    l.set_visible(false);
    l
}

fn spin_row(title: &str, subtitle: &str, spin: &gtk::SpinButton) -> adw::ActionRow {
    let row = adw::ActionRow::new();
    row.set_title(title);
    row.set_subtitle(subtitle);
    spin.set_valign(gtk::Align::Center);
    spin.set_numeric(true);
    row.add_suffix(spin);
    row.set_activatable_widget(Some(spin));
    row
}

/// A page: a scrolled, clamped column.
fn page(children: &[&gtk::Widget]) -> gtk::ScrolledWindow {
    let column = gtk::Box::new(gtk::Orientation::Vertical, 18);
    column.set_margin_top(24);
    column.set_margin_bottom(24);
    column.set_margin_start(12);
    column.set_margin_end(12);
    for c in children {
        column.append(*c);
    }
    let clamp = adw::Clamp::new();
    clamp.set_maximum_size(560);
    clamp.set_child(Some(&column));
    let scrolled = gtk::ScrolledWindow::new();
    scrolled.set_hscrollbar_policy(gtk::PolicyType::Never);
    scrolled.set_child(Some(&clamp));
    scrolled.set_vexpand(true);
    scrolled
}

fn set_error(label: &gtk::Label, text: Option<&str>) {
    label.set_label(text.unwrap_or_default());
    label.set_visible(text.is_some());
}

/// A user-typed path: `~` expanded.
/// How the chosen image would start, or why it cannot (with the firmware installed now).
fn iso_source(path: &Path, detected: &Detected) -> Result<Source, Unstartable> {
    source_for_iso(path, detected, phyllome_vmm::boot::firmware::installed())
}

fn typed_path(text: &str) -> Option<PathBuf> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(rest) = t.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return Some(PathBuf::from(home).join(rest));
        }
    }
    Some(PathBuf::from(t))
}

/// The message for an unreadable image.
fn iso_error(e: &iso::IsoError) -> String {
    match e {
        iso::IsoError::NotIso { path } => tr_args(
            "wizard-not-iso",
            &[(
                "file",
                &path.file_name().unwrap_or_default().to_string_lossy(),
            )],
        ),
        iso::IsoError::Io { path, source } => tr_args(
            "wizard-iso-unreadable",
            &[
                ("file", &path.display().to_string()),
                ("reason", &source.to_string()),
            ],
        ),
        iso::IsoError::Damaged { reason, .. } => {
            tr_args("wizard-iso-damaged", &[("reason", reason)])
        }
        iso::IsoError::Missing { inner } => tr_args("wizard-iso-damaged", &[("reason", inner)]),
    }
}

impl Wizard {
    fn taken_names(&self) -> Vec<String> {
        self.store
            .list()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| match e {
                Entry::Vm { config, .. } => Some(config.name),
                Entry::Broken { .. } => None,
            })
            .collect()
    }

    /// The source chosen, or why none is.
    fn source(&self) -> Result<Source, String> {
        if let Some(kernel) = typed_path(&self.w.kernel.text()) {
            if !kernel.is_file() {
                return Err(tr_args(
                    "wizard-kernel-missing",
                    &[("file", &kernel.display().to_string())],
                ));
            }
            let initrd = typed_path(&self.w.initrd.text());
            if let Some(i) = &initrd {
                if !i.is_file() {
                    return Err(tr_args(
                        "wizard-kernel-missing",
                        &[("file", &i.display().to_string())],
                    ));
                }
            }
            return Ok(Source::Kernel {
                kernel,
                initrd,
                cmdline: self.w.cmdline.text().to_string(),
            });
        }
        match &self.iso {
            IsoState::Found(path, detected) => {
                iso_source(path, detected).map_err(|why| why.sentence(&detected.name))
            }
            IsoState::Bad(why) => Err(why.clone()),
            IsoState::Reading(_) => Err(tr("wizard-reading")),
            IsoState::None => Err(String::new()),
        }
    }

    /// The resources typed in, or why they do not fit.
    fn resources(&self) -> Result<Resources, String> {
        let r = Resources {
            cpus: u32::try_from(self.w.cpus.value_as_int()).unwrap_or(0),
            memory_mib: u64::try_from(self.w.memory.value_as_int()).unwrap_or(0),
            disk: u64::try_from(self.w.disk.value_as_int()).unwrap_or(0) * GIB,
        };
        let name = self.w.name.text().trim().to_owned();
        if name.is_empty() {
            return Err(tr("wizard-name-empty"));
        }
        if self
            .taken_names()
            .iter()
            .any(|t| t.trim().eq_ignore_ascii_case(&name))
        {
            return Err(tr_args("wizard-name-taken", &[("name", &name)]));
        }
        match &self.host {
            Some(host) => resources::check(&r, host)
                .map(|()| r)
                .map_err(|e| crate::messages::resource_error(&e)),
            None => Ok(r),
        }
    }

    fn format(&self) -> ImageFormat {
        if self.w.format.selected() == 1 {
            ImageFormat::Raw
        } else {
            ImageFormat::Qcow2
        }
    }

    /// Fills the resource fields with what suits this OS on this computer.
    fn suggest(&mut self, os: iso::OsFamily, name: &str) {
        let name = unique_name(name, &self.taken_names());
        self.w.name.set_text(&name);
        if let Some(host) = &self.host {
            let r = resources::suggest(os, host);
            self.w.cpus.set_range(1.0, f64::from(host.cpus.max(1)));
            self.w.cpus.set_value(f64::from(r.cpus));
            #[allow(clippy::cast_precision_loss, reason = "MiB and GiB counts are small")]
            {
                self.w.memory.set_value(r.memory_mib as f64);
                self.w.disk.set_value((r.disk / GIB) as f64);
            }
        }
    }

    /// Shows what the source page knows.
    fn show_source(&self) {
        let row = &self.w.iso_row;
        if matches!(self.iso, IsoState::Bad(_)) {
            self.w.iso_icon.add_css_class("error");
        } else {
            self.w.iso_icon.remove_css_class("error");
        }
        match &self.iso {
            IsoState::None => {
                row.set_title(&tr("wizard-no-image"));
                row.set_subtitle(&tr("wizard-no-image-hint"));
                self.w
                    .iso_icon
                    .set_icon_name(Some("media-optical-symbolic"));
            }
            IsoState::Reading(p) => {
                row.set_title(&p.file_name().unwrap_or_default().to_string_lossy());
                row.set_subtitle(&tr("wizard-reading"));
            }
            IsoState::Found(p, d) => {
                row.set_title(&glib::markup_escape_text(&d.name));
                let usable = iso_source(p, d);
                let how = match &usable {
                    Ok(_) => tr("wizard-boots-firmware"),
                    Err(why) => why.sentence(&d.name),
                };
                row.set_subtitle(&glib::markup_escape_text(&format!(
                    "{} · {}",
                    p.file_name().unwrap_or_default().to_string_lossy(),
                    how
                )));
                self.w.iso_icon.set_icon_name(Some(if usable.is_ok() {
                    "emblem-ok-symbolic"
                } else {
                    "dialog-warning-symbolic"
                }));
            }
            IsoState::Bad(why) => {
                row.set_title(&tr("wizard-image-unusable"));
                row.set_subtitle(&glib::markup_escape_text(why));
                self.w.iso_icon.set_icon_name(Some("dialog-error-symbolic"));
            }
        }
    }

    /// Shows the graphics page's switch and its reason.
    fn show_graphics(&self) {
        let (row, switch) = (&self.w.three_d_row, &self.w.three_d);
        match &self.graphics {
            None => {
                row.set_subtitle(&tr("wizard-3d-probing"));
                switch.set_sensitive(false);
            }
            Some(
                g @ Graphics3d::Available {
                    renderer, software, ..
                },
            ) => {
                let key = if *software {
                    "wizard-3d-available-software"
                } else {
                    "wizard-3d-available"
                };
                row.set_subtitle(&glib::markup_escape_text(&tr_args(
                    key,
                    &[("renderer", renderer)],
                )));
                switch.set_sensitive(true);
                if let Some(vulkan) = g.vulkan_sentence() {
                    self.w
                        .vulkan_row
                        .set_subtitle(&glib::markup_escape_text(&vulkan));
                    self.w.vulkan_row.set_visible(true);
                }
            }
            Some(Graphics3d::Unavailable(why)) => {
                row.set_subtitle(&glib::markup_escape_text(why));
                switch.set_active(false);
                switch.set_sensitive(false);
            }
        }
    }

    /// Fills the summary page.
    fn show_summary(&self, plan: &NewVm) {
        while let Some(child) = self.w.summary.first_child() {
            self.w.summary.remove(&child);
        }
        let add = |title: String, value: String| {
            let row = adw::ActionRow::new();
            row.set_title(&title);
            row.set_subtitle(&glib::markup_escape_text(&value));
            row.add_css_class("property");
            self.w.summary.append(&row);
        };
        match &plan.source {
            Source::Iso { path, detected, .. } => {
                add(tr("summary-os"), detected.name.clone());
                add(tr("summary-installer"), path.display().to_string());
            }
            Source::Kernel { kernel, .. } => {
                add(tr("summary-kernel"), kernel.display().to_string());
            }
        }
        add(tr("summary-name"), plan.name.clone());
        add(tr("summary-cpus"), plan.resources.cpus.to_string());
        add(
            tr("summary-memory"),
            tr_args(
                "size-mib",
                &[("mib", &plan.resources.memory_mib.to_string())],
            ),
        );
        add(
            tr("summary-disk"),
            tr_args(
                match plan.format {
                    ImageFormat::Qcow2 => "summary-disk-qcow2",
                    ImageFormat::Raw => "summary-disk-raw",
                },
                &[("gib", &(plan.resources.disk / GIB).to_string())],
            ),
        );
        add(
            tr("summary-graphics"),
            match plan.renderer {
                Renderer::TwoD => tr("summary-3d-off"),
                Renderer::Virgl => tr("summary-3d-on"),
                Renderer::Venus => tr("summary-3d-on-vulkan"),
            },
        );
        add(
            tr("summary-network"),
            match plan.network {
                Some(_) => tr("summary-network-on"),
                None => tr("summary-network-off"),
            },
        );
    }

    /// Enables Back and Next for the page, and says what is wrong on it.
    fn refresh(&self) {
        let w = &self.w;
        w.stack.set_visible_child_name(self.page.name());
        w.title.set_subtitle(&tr_args(
            "wizard-step",
            &[
                ("step", &self.page.number().to_string()),
                (
                    "what",
                    &tr(match self.page {
                        Page::Source => "wizard-page-source",
                        Page::Resources => "wizard-page-resources",
                        Page::Graphics => "wizard-page-graphics",
                        Page::Summary | Page::Creating => "wizard-page-summary",
                    }),
                ),
            ],
        ));
        w.back.set_visible(self.page.back().is_some());
        w.back.set_sensitive(self.page != Page::Creating);
        w.next.set_label(&tr(if self.page == Page::Summary {
            "wizard-create"
        } else {
            "wizard-next"
        }));
        w.next.set_visible(self.page != Page::Creating);
        let ok = match self.page {
            Page::Source => {
                let s = self.source();
                let shown = match &s {
                    Err(e) if !e.is_empty() && !matches!(self.iso, IsoState::Bad(_)) => {
                        Some(e.as_str())
                    }
                    _ => None,
                };
                // The ISO row shows its own trouble; this label is for the rest.
                set_error(
                    &w.source_error,
                    shown.filter(|_| {
                        !matches!(self.iso, IsoState::Found(_, _)) || !w.kernel.text().is_empty()
                    }),
                );
                s.is_ok()
            }
            Page::Resources => {
                let r = self.resources();
                set_error(&w.resources_error, r.as_ref().err().map(String::as_str));
                r.is_ok()
            }
            Page::Graphics => self.graphics.is_some(),
            Page::Summary => self.plan.is_some(),
            Page::Creating => false,
        };
        w.next.set_sensitive(ok);
        // Enter goes on from wherever the focus is not a field.
        let in_field = gtk::prelude::GtkWindowExt::focus(&w.window)
            .is_some_and(|f| f.is::<gtk::Text>() || f.is::<gtk::SpinButton>());
        if ok && !in_field && w.next.is_visible() {
            w.next.grab_focus();
        }
    }

    /// Makes the VM: its folder and definition now, its files on a worker thread.
    fn create(&mut self, sender: &ComponentSender<Self>) {
        let Some(plan) = self.plan.clone() else {
            return;
        };
        set_error(&self.w.summary_error, None);
        let provisional = plan.config(Path::new(""));
        let dir = match self.store.create(&provisional) {
            Ok(d) => d,
            Err(e) => {
                set_error(
                    &self.w.summary_error,
                    Some(&crate::messages::store_error(&e)),
                );
                return;
            }
        };
        self.creating = Some(dir.clone());
        self.page = Page::Creating;
        let s = sender.input_sender().clone();
        std::thread::spawn(move || {
            let result = plan
                .build(&dir, |step| s.emit(WizardMsg::Progress(step)))
                .map_err(|e| e.to_string());
            s.emit(WizardMsg::Done(result));
        });
    }
}

impl SimpleComponent for Wizard {
    type Init = WizardInit;
    type Input = WizardMsg;
    type Output = WizardOutput;
    type Root = adw::Window;
    type Widgets = ();

    fn init_root() -> Self::Root {
        adw::Window::new()
    }

    #[allow(clippy::too_many_lines, reason = "builds the pages, top to bottom")]
    fn init(
        init: WizardInit,
        window: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        window.set_title(Some(&tr("wizard-title")));
        window.set_default_size(640, 620);
        window.set_modal(true);
        window.set_transient_for(init.parent.as_ref());
        window.add_css_class("wizard");

        let title = adw::WindowTitle::new(&tr("wizard-title"), "");
        let header = adw::HeaderBar::new();
        header.set_title_widget(Some(&title));
        header.set_show_end_title_buttons(false);
        header.set_show_start_title_buttons(false);
        let cancel = gtk::Button::with_label(&tr("wizard-cancel"));
        let back = gtk::Button::with_label(&tr("wizard-back"));
        let next = gtk::Button::with_label(&tr("wizard-next"));
        next.add_css_class("suggested-action");
        header.pack_start(&cancel);
        header.pack_start(&back);
        header.pack_end(&next);
        let s = sender.input_sender().clone();
        cancel.connect_clicked(move |_| s.emit(WizardMsg::Cancel));
        let s = sender.input_sender().clone();
        back.connect_clicked(move |_| s.emit(WizardMsg::Back));
        let s = sender.input_sender().clone();
        next.connect_clicked(move |_| s.emit(WizardMsg::Next));

        // 1. Source.
        let intro = adw::StatusPage::new();
        intro.set_icon_name(Some("media-optical-symbolic"));
        intro.set_title(&tr("wizard-source-title"));
        intro.set_description(Some(&tr("wizard-source-description")));
        intro.add_css_class("compact");
        let choose = gtk::Button::with_label(&tr("wizard-choose-image"));
        choose.add_css_class("pill");
        choose.add_css_class("suggested-action");
        choose.set_halign(gtk::Align::Center);
        let s = sender.input_sender().clone();
        choose.connect_clicked(move |_| s.emit(WizardMsg::ChooseIso));
        let iso_group = group(&tr("wizard-image-group"), None);
        let iso_row = adw::ActionRow::new();
        let iso_icon = gtk::Image::from_icon_name("media-optical-symbolic");
        iso_row.add_prefix(&iso_icon);
        iso_group.add(&iso_row);
        let adv_group = group("", None);
        let advanced = adw::ExpanderRow::new();
        advanced.set_title(&tr("wizard-advanced"));
        advanced.set_subtitle(&tr("wizard-advanced-description"));
        let kernel = adw::EntryRow::new();
        kernel.set_title(&tr("wizard-kernel"));
        let initrd = adw::EntryRow::new();
        initrd.set_title(&tr("wizard-initrd"));
        let cmdline = adw::EntryRow::new();
        cmdline.set_title(&tr("wizard-cmdline"));
        for e in [&kernel, &initrd, &cmdline] {
            let s = sender.input_sender().clone();
            e.connect_changed(move |_| s.emit(WizardMsg::Changed));
            advanced.add_row(e);
        }
        adv_group.add(&advanced);
        let source_error = error_label();
        let source_page = page(&[
            intro.upcast_ref(),
            choose.upcast_ref(),
            iso_group.upcast_ref(),
            source_error.upcast_ref(),
            adv_group.upcast_ref(),
        ]);

        // 2. Resources.
        let res_group = group(
            &tr("wizard-resources-title"),
            Some(&tr("wizard-resources-description")),
        );
        let name = adw::EntryRow::new();
        name.set_title(&tr("wizard-name"));
        res_group.add(&name);
        let host = resources::probe_host(init.store.root()).ok();
        let max_cpus = host.map_or(64, |h| h.cpus.max(1));
        let cpus = gtk::SpinButton::with_range(1.0, f64::from(max_cpus), 1.0);
        #[allow(clippy::cast_precision_loss, reason = "MiB counts are small")]
        let memory = gtk::SpinButton::with_range(
            256.0,
            host.map_or(65536.0, |h| (h.memory >> 20).max(256) as f64),
            256.0,
        );
        let disk = gtk::SpinButton::with_range(1.0, 16384.0, 1.0);
        res_group.add(&spin_row(
            &tr("wizard-cpus"),
            &tr_args("wizard-cpus-host", &[("count", &max_cpus.to_string())]),
            &cpus,
        ));
        res_group.add(&spin_row(
            &tr("wizard-memory"),
            &tr("wizard-memory-unit"),
            &memory,
        ));
        res_group.add(&spin_row(
            &tr("wizard-disk"),
            &tr("wizard-disk-unit"),
            &disk,
        ));
        let format = adw::ComboRow::new();
        format.set_title(&tr("wizard-disk-format"));
        format.set_model(Some(&gtk::StringList::new(&[
            &tr("wizard-format-qcow2"),
            &tr("wizard-format-raw"),
        ])));
        res_group.add(&format);
        let s = sender.input_sender().clone();
        name.connect_changed(move |_| s.emit(WizardMsg::Changed));
        for spin in [&cpus, &memory, &disk] {
            let s = sender.input_sender().clone();
            spin.connect_value_changed(move |_| s.emit(WizardMsg::Changed));
        }
        let resources_error = error_label();
        let resources_page = page(&[res_group.upcast_ref(), resources_error.upcast_ref()]);

        // 3. Graphics.
        let gfx_group = group(
            &tr("wizard-graphics-title"),
            Some(&tr("wizard-graphics-description")),
        );
        let three_d_row = adw::ActionRow::new();
        three_d_row.set_title(&tr("wizard-3d"));
        let three_d = gtk::Switch::new();
        three_d.set_valign(gtk::Align::Center);
        three_d_row.add_suffix(&three_d);
        three_d_row.set_activatable_widget(Some(&three_d));
        gfx_group.add(&three_d_row);
        let vulkan_row = adw::ActionRow::new();
        vulkan_row.set_title(&tr("wizard-vulkan"));
        vulkan_row.set_visible(false);
        gfx_group.add(&vulkan_row);
        let graphics_page = page(&[gfx_group.upcast_ref()]);

        // 4. Summary.
        let sum_group = group(
            &tr("wizard-summary-title"),
            Some(&tr("wizard-summary-description")),
        );
        let summary = gtk::ListBox::new();
        summary.add_css_class("boxed-list");
        summary.set_selection_mode(gtk::SelectionMode::None);
        sum_group.add(&summary);
        let summary_error = error_label();
        let summary_page = page(&[sum_group.upcast_ref(), summary_error.upcast_ref()]);

        // Creating.
        let progress = gtk::ProgressBar::new();
        let progress_label = gtk::Label::new(None);
        progress_label.add_css_class("dim-label");
        let creating = adw::StatusPage::new();
        creating.set_icon_name(Some("document-save-symbolic"));
        creating.set_title(&tr("wizard-creating"));
        let creating_box = gtk::Box::new(gtk::Orientation::Vertical, 12);
        creating_box.append(&progress);
        creating_box.append(&progress_label);
        creating.set_child(Some(&creating_box));

        let stack = gtk::Stack::new();
        stack.set_transition_type(gtk::StackTransitionType::SlideLeftRight);
        stack.add_named(&source_page, Some(Page::Source.name()));
        stack.add_named(&resources_page, Some(Page::Resources.name()));
        stack.add_named(&graphics_page, Some(Page::Graphics.name()));
        stack.add_named(&summary_page, Some(Page::Summary.name()));
        stack.add_named(&creating, Some(Page::Creating.name()));

        let content = gtk::Box::new(gtk::Orientation::Vertical, 0);
        content.append(&header);
        content.append(&stack);
        window.set_content(Some(&content));
        window.set_default_widget(Some(&next));

        // Keys: Escape cancels, Alt+Left goes back; Enter in a field activates Next (the
        // default widget), and Next has the focus when a page opens.
        let keys = gtk::EventControllerKey::new();
        keys.set_propagation_phase(gtk::PropagationPhase::Capture);
        let s = sender.input_sender().clone();
        keys.connect_key_pressed(move |_, key, _, state| {
            match key {
                gdk::Key::Escape => s.emit(WizardMsg::Cancel),
                gdk::Key::Left if state.contains(gdk::ModifierType::ALT_MASK) => {
                    s.emit(WizardMsg::Back);
                }
                _ => return glib::Propagation::Proceed,
            }
            glib::Propagation::Stop
        });
        window.add_controller(keys);
        for e in [&kernel, &initrd, &cmdline, &name] {
            e.set_activates_default(true);
        }

        // Drop an image on the window.
        let drop = gtk::DropTarget::new(gio::File::static_type(), gdk::DragAction::COPY);
        let s = sender.input_sender().clone();
        drop.connect_drop(move |_, value, _, _| {
            match value.get::<gio::File>().ok().and_then(|f| f.path()) {
                Some(path) => {
                    s.emit(WizardMsg::IsoChosen(path));
                    true
                }
                None => false,
            }
        });
        window.add_controller(drop);
        let s = sender.input_sender().clone();
        window.connect_close_request(move |_| {
            s.emit(WizardMsg::Cancel);
            glib::Propagation::Stop
        });

        let mut model = Wizard {
            store: init.store,
            host,
            page: Page::Source,
            iso: IsoState::None,
            graphics: None,
            plan: None,
            creating: None,
            chooser: None,
            suggested_for: None,
            w: Widgets {
                window: window.clone(),
                title,
                stack,
                back,
                next,
                iso_row,
                iso_icon,
                kernel,
                initrd,
                cmdline,
                source_error,
                name,
                cpus,
                memory,
                disk,
                format,
                resources_error,
                three_d,
                three_d_row,
                vulkan_row,
                summary,
                summary_error,
                progress,
                progress_label,
            },
        };
        model.suggest(iso::OsFamily::Unknown, &tr("wizard-default-name"));
        if let Some(g) = init.graphics {
            model.graphics = Some(g.clone());
            model
                .w
                .three_d
                .set_active(matches!(g, Graphics3d::Available { .. }));
        }
        model.show_source();
        model.show_graphics();
        if let Some(iso) = init.iso {
            sender.input(WizardMsg::IsoChosen(iso));
        }
        model.refresh();
        window.present();
        ComponentParts { model, widgets: () }
    }

    fn update(&mut self, msg: WizardMsg, sender: ComponentSender<Self>) {
        match msg {
            WizardMsg::ChooseIso => {
                let chooser = gtk::FileChooserNative::new(
                    Some(&tr("wizard-choose-image")),
                    Some(&self.w.window),
                    gtk::FileChooserAction::Open,
                    Some(&tr("wizard-open")),
                    Some(&tr("wizard-cancel")),
                );
                let filter = gtk::FileFilter::new();
                filter.set_name(Some(&tr("wizard-iso-filter")));
                filter.add_mime_type("application/x-cd-image");
                filter.add_mime_type("application/x-iso9660-image");
                filter.add_suffix("iso");
                chooser.add_filter(&filter);
                let all = gtk::FileFilter::new();
                all.set_name(Some(&tr("wizard-all-files")));
                all.add_pattern("*");
                chooser.add_filter(&all);
                chooser.set_modal(true);
                let s = sender.input_sender().clone();
                chooser.connect_response(move |d, response| {
                    if response == gtk::ResponseType::Accept {
                        if let Some(path) = d.file().and_then(|f| f.path()) {
                            s.emit(WizardMsg::IsoChosen(path));
                        }
                    }
                });
                chooser.show();
                self.chooser = Some(chooser);
            }
            WizardMsg::IsoChosen(path) => {
                self.iso = IsoState::Reading(path.clone());
                let s = sender.input_sender().clone();
                std::thread::spawn(move || {
                    let result = iso::detect(&path).map_err(|e| iso_error(&e));
                    s.emit(WizardMsg::Detected(path, result));
                });
                self.show_source();
            }
            WizardMsg::Detected(path, result) => {
                if !matches!(&self.iso, IsoState::Reading(p) if *p == path) {
                    return; // Another image was chosen since.
                }
                self.iso = match result {
                    Ok(d) => {
                        if self.suggested_for.as_ref() != Some(&path) {
                            self.suggest(d.family, &d.name);
                            self.suggested_for = Some(path.clone());
                        }
                        IsoState::Found(path, d)
                    }
                    Err(why) => IsoState::Bad(why),
                };
                self.show_source();
            }
            WizardMsg::Changed => {}
            WizardMsg::Graphics(g) => {
                if self.graphics.is_none() {
                    self.w
                        .three_d
                        .set_active(matches!(g, Graphics3d::Available { .. }));
                }
                self.graphics = Some(g);
                self.show_graphics();
            }
            WizardMsg::Back => {
                if let Some(p) = self.page.back() {
                    self.page = p;
                }
            }
            WizardMsg::Next => match self.page {
                Page::Source => {
                    if let Ok(source) = self.source() {
                        // A kernel instead of the image: choosing the image again suggests
                        // anew.
                        if matches!(source, Source::Kernel { .. }) {
                            self.suggested_for = None;
                        }
                        self.page = Page::Resources;
                        self.w.name.grab_focus();
                    }
                }
                Page::Resources if self.resources().is_ok() => self.page = Page::Graphics,
                Page::Graphics if self.graphics.is_some() => {
                    if let (Ok(source), Ok(resources)) = (self.source(), self.resources()) {
                        let plan = NewVm {
                            name: self.w.name.text().trim().to_owned(),
                            source,
                            resources,
                            format: self.format(),
                            renderer: match &self.graphics {
                                Some(g)
                                    if self.w.three_d.is_active()
                                        && self.w.three_d.is_sensitive() =>
                                {
                                    g.renderer_when_on()
                                }
                                _ => Renderer::TwoD,
                            },
                            // On, as in GNOME Boxes; settings turn it off.
                            network: Some(phyllome_vmm::network::Mac::random()),
                        };
                        self.show_summary(&plan);
                        self.plan = Some(plan);
                        self.page = Page::Summary;
                    }
                }
                Page::Summary => self.create(&sender),
                _ => {}
            },
            WizardMsg::Progress(step) => {
                let steps = self.plan.as_ref().map(NewVm::steps).unwrap_or_default();
                let at = steps.iter().position(|s| *s == step).unwrap_or(0);
                #[allow(clippy::cast_precision_loss, reason = "three steps at most")]
                self.w
                    .progress
                    .set_fraction(at as f64 / steps.len().max(1) as f64);
                self.w.progress_label.set_label(&tr(match step {
                    Step::Vars => "wizard-step-vars",
                    Step::Disk => "wizard-step-disk",
                }));
            }
            WizardMsg::Done(result) => {
                let Some(dir) = self.creating.take() else {
                    return;
                };
                let saved = result.and_then(|()| {
                    let config = self.plan.as_ref().map(|p| p.config(&dir));
                    match config {
                        Some(c) => self
                            .store
                            .save(&dir, &c)
                            .map_err(|e| crate::messages::store_error(&e)),
                        None => Err(String::new()),
                    }
                });
                match saved {
                    Ok(()) => {
                        self.w.progress.set_fraction(1.0);
                        let _ = sender.output(WizardOutput::Created(dir));
                        self.w.window.destroy();
                        let _ = sender.output(WizardOutput::Closed);
                        return;
                    }
                    Err(why) => {
                        // Nothing of the user's is in it: we made it a moment ago.
                        let _ = std::fs::remove_dir_all(&dir);
                        self.page = Page::Summary;
                        set_error(
                            &self.w.summary_error,
                            Some(&tr_args("wizard-create-failed", &[("reason", &why)])),
                        );
                    }
                }
            }
            WizardMsg::Cancel => {
                if self.page == Page::Creating {
                    return; // Let the work finish (or fail) cleanly.
                }
                self.w.window.destroy();
                let _ = sender.output(WizardOutput::Closed);
                return;
            }
        }
        self.refresh();
    }
}
