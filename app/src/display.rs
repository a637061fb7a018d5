//! The display window: the guest's screen from a console connection
//! ([`phyllome_vmm::console_conn`]), kept at its aspect ratio, with keyboard, pointer and
//! wheel sent back to the guest and the guest's cursor shown as the window's own pointer
//! (so it follows the mouse with no delay). A reader thread ([`crate::frames`]) copies
//! out only what changed; the GTK main loop wraps it in textures ([`crate::screen`]).
//!
//! Keyboard: while the screen has the keyboard ("captured", the default) every key goes to
//! the guest and the desktop's own shortcuts are inhibited where the system allows it
//! (Alt+Tab, Super...), except F11, which toggles fullscreen. **Ctrl+Alt** releases the
//! keyboard to the desktop and the app; a click on the screen captures it again. Keys held
//! in the guest are released when the window loses focus, so none stays stuck.
//! When the connection dies the window says so and offers to reconnect.

use crate::frames::{read_frames, FrameEvent};
use crate::i18n::{tr, tr_args};
use crate::screen::{GuestScreen, Pixels};
use phyllome_vmm::console_conn::client::ConsoleClient;
use phyllome_vmm::console_conn::Message;
use relm4::adw::prelude::*;
use relm4::gtk::{gdk, glib};
use relm4::prelude::*;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// evdev buttons.
const BTN_LEFT: u16 = 0x110;
const BTN_RIGHT: u16 = 0x111;
const BTN_MIDDLE: u16 = 0x112;
/// The tablet's axis range.
const TABLET_MAX: f64 = 32767.0;

/// What the window opens on.
#[derive(Debug, Clone)]
pub struct DisplayInit {
    /// The console connection's socket.
    pub socket: PathBuf,
    /// The VM's name, for the title.
    pub name: String,
    /// Where to keep a small picture of the last frame (the library's thumbnail), written
    /// when the display goes away.
    pub thumbnail: Option<PathBuf>,
    /// Whether the VM may hear the microphone; none when it has no sound card (the header's
    /// microphone button is then hidden).
    pub microphone: Option<bool>,
}

/// Messages to the window.
#[derive(Debug)]
pub enum DisplayInput {
    /// A whole new frame.
    Frame(Pixels),
    /// A changed rectangle at (x, y).
    Patch(u32, u32, Pixels),
    /// The guest's cursor image and hot spot, or hidden.
    Cursor(Option<(Pixels, i32, i32)>),
    /// The connection is up.
    Connected,
    /// The connection ended, with why.
    Lost(String),
    /// The user asked to reconnect.
    Reconnect,
    /// A key (hardware keycode) went down or up.
    Key(u32, bool),
    /// Ctrl+Alt: give the keyboard back to the desktop.
    ReleaseKeyboard,
    /// A click on the screen: take the keyboard.
    CaptureKeyboard,
    /// The window gained or lost the focus.
    Active(bool),
    /// The pointer is at (x, y) in widget coordinates.
    Motion(f64, f64),
    /// A mouse button (GDK numbering) went down or up.
    Button(u32, bool),
    /// Wheel clicks (GDK directions: dy positive is down).
    Scroll(f64, f64),
    /// The screen area now has this size in device pixels.
    Resized(u32, u32),
    /// A resize settled (the number says which): ask the guest for that size.
    AskSize(u64),
    /// F11 or the header bar's button.
    ToggleFullscreen,
    /// The window manager says whether the window is fullscreen.
    Fullscreened(bool),
    /// The pointer's height over the screen area (to show the leave-fullscreen control).
    PointerY(f64),
    /// The window is closing.
    Closing,
    /// The VM's graphics process stopped (3D): say so, and offer a restart.
    GraphicsStopped,
    /// The guest restarted: attach again if the display was gone.
    Rebooted,
    /// The header's microphone button: whether the VM may hear the microphone.
    Microphone(bool),
}

/// What the window asks of its owner.
#[derive(Debug)]
pub enum DisplayOutput {
    /// Restart the VM (its graphics process stopped).
    Restart,
    /// The window is gone: the owner may drop this component now, and not before (GTK
    /// still notifies the window's handlers while it is torn down).
    Closed,
    /// Let the VM hear the microphone, or not.
    Microphone(bool),
}

/// The window's state.
#[derive(Debug)]
pub struct Display {
    socket: PathBuf,
    name: String,
    thumbnail: Option<PathBuf>,
    /// Whether the VM may hear the microphone (none: no sound card).
    microphone: Option<bool>,
    screen: GuestScreen,
    has_picture: bool,
    status: Option<String>,
    /// Why, under the status.
    detail: String,
    writer: Arc<Mutex<Option<ConsoleClient>>>,
    /// The window took the reader's last frame and can take another (see
    /// [`read_frames`]).
    frame_taken: Arc<AtomicBool>,
    picture: gtk::Picture,
    window: adw::ApplicationWindow,
    /// The screen area's size, and how many times it changed.
    area: (u32, u32),
    area_changes: u64,
    /// Keys go to the guest (and the desktop's shortcuts are inhibited).
    captured: bool,
    /// evdev codes the guest believes are held.
    held: BTreeSet<u16>,
    fullscreen: bool,
    /// The pointer is near the top edge (fullscreen: show the leave control).
    pointer_at_top: bool,
    /// The graphics process stopped; the restart button shows.
    graphics_stopped: bool,
}

impl Display {
    fn send(&self, msg: Message) {
        let mut w = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = w.as_mut() {
            if c.send(msg).is_err() {
                *w = None;
            }
        }
    }

    /// Writes the picture, 320 pixels wide, as the library's thumbnail (a temporary file
    /// renamed over the old one). Nothing to do without a picture.
    fn save_thumbnail(&self) {
        let Some(path) = &self.thumbnail else { return };
        let (w, h) = self.screen.size();
        if !self.has_picture || w == 0 || h == 0 {
            return;
        }
        let (tw, th) = (320.0, 320.0 * f64::from(h) / f64::from(w));
        let snapshot = gtk::Snapshot::new();
        self.screen.snapshot(&snapshot, tw, th);
        let (Some(node), Some(renderer)) = (snapshot.to_node(), self.window.renderer()) else {
            return;
        };
        let texture = renderer.render_texture(&node, None);
        let temp = path.with_extension("png.tmp");
        if texture.save_to_png(&temp).is_ok() {
            let _ = std::fs::rename(&temp, path);
        }
    }

    /// Releases, in the guest, every key it believes is held.
    fn release_held_keys(&mut self) {
        for code in std::mem::take(&mut self.held) {
            self.send(Message::Key { code, down: false });
        }
    }

    /// Asks the desktop to send its shortcuts to us while the keyboard is captured.
    fn apply_capture(&self) {
        let Some(surface) = self.window.surface() else {
            return;
        };
        if let Ok(toplevel) = surface.downcast::<gdk::Toplevel>() {
            if self.captured && self.window.is_active() {
                toplevel.inhibit_system_shortcuts(None::<&gdk::Event>);
            } else {
                toplevel.restore_system_shortcuts();
            }
        }
    }

    /// The header bar's subtitle: the VM's state and what the keyboard does.
    fn subtitle(&self) -> String {
        if let Some(status) = &self.status {
            return status.clone();
        }
        if self.captured {
            tr("display-running-captured")
        } else {
            tr("display-running-released")
        }
    }

    /// Widget coordinates to the tablet's 0..=32767 range over the shown image
    /// (`Picture` letterboxes the image inside the widget).
    fn to_tablet(&self, x: f64, y: f64) -> Option<(u32, u32)> {
        let size = self.screen.size();
        let (iw, ih) = (f64::from(size.0), f64::from(size.1));
        let (ww, wh) = (
            f64::from(self.picture.width()),
            f64::from(self.picture.height()),
        );
        if iw <= 0.0 || ih <= 0.0 || ww <= 0.0 || wh <= 0.0 {
            return None;
        }
        let scale = (ww / iw).min(wh / ih);
        let (sw, sh) = (iw * scale, ih * scale);
        let (ox, oy) = ((ww - sw) / 2.0, (wh - sh) / 2.0);
        let fx = ((x - ox) / sw).clamp(0.0, 1.0);
        let fy = ((y - oy) / sh).clamp(0.0, 1.0);
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "clamped to 0..=32767"
        )]
        Some(((fx * TABLET_MAX) as u32, (fy * TABLET_MAX) as u32))
    }
}

/// A sentence for the user about why the connection ended.
fn reason(e: &phyllome_vmm::console_conn::ConnError) -> String {
    use phyllome_vmm::console_conn::ConnError;
    match e {
        ConnError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            tr("display-lost-stopped")
        }
        ConnError::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            tr("display-lost-not-running")
        }
        other => other.to_string(),
    }
}

/// Connects and runs the reader thread, reporting to `sender`.
fn start_reader(
    socket: PathBuf,
    writer: Arc<Mutex<Option<ConsoleClient>>>,
    frame_taken: Arc<AtomicBool>,
    sender: relm4::Sender<DisplayInput>,
) {
    frame_taken.store(true, Ordering::Release);
    std::thread::spawn(move || {
        let mut client = match ConsoleClient::connect(&socket) {
            Ok(c) => c,
            Err(e) => {
                sender.emit(DisplayInput::Lost(reason(&e)));
                return;
            }
        };
        if let Ok(w) = client.try_clone() {
            *writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(w);
        }
        sender.emit(DisplayInput::Connected);
        let err = read_frames(&mut client, &frame_taken, &mut |event| {
            sender.emit(match event {
                FrameEvent::Frame(p) => DisplayInput::Frame(p),
                FrameEvent::Patch(x, y, p) => DisplayInput::Patch(x, y, p),
                FrameEvent::Cursor(c) => DisplayInput::Cursor(c),
            });
        });
        sender.emit(DisplayInput::Lost(reason(&err)));
    });
}

/// Whether this key press completes the release combination (Ctrl+Alt).
fn is_release_combo(key: gdk::Key, state: gdk::ModifierType) -> bool {
    let ctrl = matches!(key, gdk::Key::Control_L | gdk::Key::Control_R);
    let alt = matches!(key, gdk::Key::Alt_L | gdk::Key::Alt_R | gdk::Key::Meta_L);
    (ctrl && state.contains(gdk::ModifierType::ALT_MASK))
        || (alt && state.contains(gdk::ModifierType::CONTROL_MASK))
}

#[relm4::component(pub)]
impl SimpleComponent for Display {
    type Init = DisplayInit;
    type Input = DisplayInput;
    type Output = DisplayOutput;

    view! {
        #[root]
        adw::ApplicationWindow {
            set_title: Some(&tr_args("display-window-title", &[("name", &model.name)])),
            set_default_width: 1024,
            set_default_height: 768,
            connect_close_request[sender] => move |_| {
                // Kept open until the thumbnail is written (it needs the renderer).
                sender.input_sender().emit(DisplayInput::Closing);
                glib::Propagation::Stop
            },
            connect_is_active_notify[sender] => move |w| sender.input_sender().emit(DisplayInput::Active(w.is_active())),
            connect_fullscreened_notify[sender] => move |w| sender.input_sender().emit(DisplayInput::Fullscreened(w.is_fullscreen())),

            gtk::Box {
                set_orientation: gtk::Orientation::Vertical,
                adw::HeaderBar {
                    #[watch]
                    set_visible: !model.fullscreen,
                    #[wrap(Some)]
                    set_title_widget = &adw::WindowTitle {
                        set_title: &model.name,
                        #[watch]
                        set_subtitle: &model.subtitle(),
                    },
                    pack_end = &gtk::Button {
                        set_icon_name: "view-fullscreen-symbolic",
                        set_tooltip_text: Some(&tr("display-fullscreen")),
                        set_focus_on_click: false,
                        connect_clicked => DisplayInput::ToggleFullscreen,
                    },
                    pack_end = &gtk::ToggleButton {
                        #[watch]
                        set_visible: model.microphone.is_some(),
                        set_active: model.microphone == Some(true),
                        #[watch]
                        set_icon_name: if model.microphone == Some(true) {
                            "microphone-sensitive-symbolic"
                        } else {
                            "microphone-disabled-symbolic"
                        },
                        #[watch]
                        set_tooltip_text: Some(&tr(if model.microphone == Some(true) {
                            "display-microphone-on"
                        } else {
                            "display-microphone-off"
                        })),
                        set_focus_on_click: false,
                        connect_toggled[sender] => move |b| {
                            sender.input(DisplayInput::Microphone(b.is_active()));
                        },
                    },
                },
                gtk::Overlay {
                    set_vexpand: true,
                    #[wrap(Some)]
                    set_child = &gtk::Stack {
                        add_named[Some("screen")] = &model.picture.clone() -> gtk::Picture {},
                        add_named[Some("status")] = &adw::StatusPage {
                            set_icon_name: Some("video-display-symbolic"),
                            #[watch]
                            set_title: model.status.as_deref().unwrap_or(""),
                            #[watch]
                            set_description: Some(&model.detail),
                            gtk::Button {
                                set_label: &tr("display-reconnect"),
                                set_halign: gtk::Align::Center,
                                add_css_class: "pill",
                                #[watch]
                                set_visible: model.writer_gone() && !model.graphics_stopped,
                                connect_clicked => DisplayInput::Reconnect,
                            },
                            gtk::Button {
                                set_label: &tr("display-restart"),
                                set_halign: gtk::Align::Center,
                                add_css_class: "pill",
                                add_css_class: "suggested-action",
                                #[watch]
                                set_visible: model.graphics_stopped,
                                connect_clicked[sender] => move |_| {
                                    let _ = sender.output(DisplayOutput::Restart);
                                },
                            },
                        },
                        #[watch]
                        set_visible_child_name: if model.status.is_some() { "status" } else { "screen" },
                    },
                    add_overlay = &gtk::Revealer {
                        set_valign: gtk::Align::Start,
                        set_halign: gtk::Align::Center,
                        set_transition_type: gtk::RevealerTransitionType::SlideDown,
                        #[watch]
                        set_reveal_child: model.fullscreen && model.pointer_at_top,
                        gtk::Button {
                            set_label: &tr("display-leave-fullscreen"),
                            set_tooltip_text: Some(&tr("display-leave-fullscreen-tooltip")),
                            set_margin_top: 6,
                            add_css_class: "osd",
                            add_css_class: "pill",
                            set_focus_on_click: false,
                            connect_clicked => DisplayInput::ToggleFullscreen,
                        },
                    },
                },
            }
        }
    }

    fn init(
        init: DisplayInit,
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        gtk::Window::set_default_icon_name(crate::APP_ID);
        let screen = GuestScreen::default();
        let picture = gtk::Picture::for_paintable(&screen);
        picture.set_content_fit(gtk::ContentFit::Contain);
        picture.set_can_focus(true);
        picture.set_focusable(true);
        picture.set_vexpand(true);
        picture.add_css_class("guest-screen");
        let model = Display {
            socket: init.socket.clone(),
            name: init.name,
            thumbnail: init.thumbnail,
            microphone: init.microphone,
            screen,
            has_picture: false,
            status: Some(tr("display-connecting")),
            detail: String::new(),
            writer: Arc::new(Mutex::new(None)),
            frame_taken: Arc::new(AtomicBool::new(true)),
            picture,
            window: root.clone(),
            area: (0, 0),
            area_changes: 0,
            captured: true,
            held: BTreeSet::new(),
            fullscreen: false,
            pointer_at_top: false,
            graphics_stopped: false,
        };
        let widgets = view_output!();

        // Keys, seen before any widget (capture phase): F11 and Ctrl+Alt are ours, the rest
        // goes to the guest while the keyboard is captured (evdev = X/Wayland keycode - 8).
        let keys = gtk::EventControllerKey::new();
        keys.set_propagation_phase(gtk::PropagationPhase::Capture);
        let s = sender.input_sender().clone();
        let captured_now = std::rc::Rc::new(std::cell::Cell::new(true));
        let cap = captured_now.clone();
        keys.connect_key_pressed(move |_, key, code, state| {
            if key == gdk::Key::F11 {
                s.emit(DisplayInput::ToggleFullscreen);
                return glib::Propagation::Stop;
            }
            if !cap.get() {
                return glib::Propagation::Proceed;
            }
            if is_release_combo(key, state) {
                cap.set(false);
                s.emit(DisplayInput::ReleaseKeyboard);
                return glib::Propagation::Stop;
            }
            s.emit(DisplayInput::Key(code, true));
            glib::Propagation::Stop
        });
        let s = sender.input_sender().clone();
        keys.connect_key_released(move |_, _, code, _| s.emit(DisplayInput::Key(code, false)));
        root.add_controller(keys);

        let motion = gtk::EventControllerMotion::new();
        let s = sender.input_sender().clone();
        motion.connect_motion(move |_, x, y| {
            s.emit(DisplayInput::Motion(x, y));
            s.emit(DisplayInput::PointerY(y));
        });
        model.picture.add_controller(motion);
        let click = gtk::GestureClick::new();
        click.set_button(0);
        let s = sender.input_sender().clone();
        let cap = captured_now;
        click.connect_pressed(move |g, _, _, _| {
            if !cap.get() {
                cap.set(true);
                s.emit(DisplayInput::CaptureKeyboard);
            }
            s.emit(DisplayInput::Button(g.current_button(), true));
        });
        let s = sender.input_sender().clone();
        click.connect_released(move |g, _, _, _| {
            s.emit(DisplayInput::Button(g.current_button(), false));
        });
        model.picture.add_controller(click);
        let scroll = gtk::EventControllerScroll::new(
            gtk::EventControllerScrollFlags::BOTH_AXES | gtk::EventControllerScrollFlags::DISCRETE,
        );
        let s = sender.input_sender().clone();
        scroll.connect_scroll(move |_, dx, dy| {
            s.emit(DisplayInput::Scroll(dx, dy));
            glib::Propagation::Stop
        });
        model.picture.add_controller(scroll);

        // Follow the screen area's size (checked each frame) to offer the guest a matching
        // resolution once a resize settles.
        let s = sender.input_sender().clone();
        model.picture.add_tick_callback(move |pic, _| {
            let scale = pic.scale_factor().max(1);
            let (w, h) = (pic.width() * scale, pic.height() * scale);
            if let (Ok(w), Ok(h)) = (u32::try_from(w), u32::try_from(h)) {
                s.emit(DisplayInput::Resized(w, h));
            }
            glib::ControlFlow::Continue
        });

        start_reader(
            init.socket,
            model.writer.clone(),
            model.frame_taken.clone(),
            sender.input_sender().clone(),
        );
        ComponentParts { model, widgets }
    }

    fn update(&mut self, msg: DisplayInput, sender: ComponentSender<Self>) {
        match msg {
            DisplayInput::Frame(p) => {
                self.screen.set_frame(p);
                self.has_picture = true;
                self.status = None;
                self.frame_taken.store(true, Ordering::Release);
                self.send(Message::FrameDone);
            }
            DisplayInput::Patch(x, y, p) => {
                self.screen.add_patch(x, y, p);
                self.frame_taken.store(true, Ordering::Release);
                self.send(Message::FrameDone);
            }
            DisplayInput::Cursor(image) => {
                // Hidden: the CSS cursor "none".
                let cursor = match image.and_then(|(p, hx, hy)| Some((p.into_texture()?, hx, hy))) {
                    Some((texture, hx, hy)) => {
                        Some(gdk::Cursor::from_texture(&texture, hx, hy, None))
                    }
                    None => gdk::Cursor::from_name("none", None),
                };
                self.picture.set_cursor(cursor.as_ref());
            }
            DisplayInput::Connected => {
                if !self.has_picture {
                    self.status = Some(tr("display-waiting"));
                }
            }
            DisplayInput::Closing => {
                self.save_thumbnail();
                self.release_held_keys();
                self.window.destroy();
                let _ = sender.output(DisplayOutput::Closed);
            }
            DisplayInput::Lost(why) => {
                self.save_thumbnail();
                self.forget_connection();
                // The graphics process's own message says more than a closed connection.
                if !self.graphics_stopped {
                    self.status = Some(tr("display-lost"));
                    self.detail = why;
                }
            }
            DisplayInput::GraphicsStopped => {
                self.save_thumbnail();
                self.forget_connection();
                self.graphics_stopped = true;
                self.status = Some(tr("display-gpu-stopped"));
                self.detail = tr("display-gpu-stopped-detail");
            }
            DisplayInput::Microphone(on) => {
                if self.microphone.is_some() && self.microphone != Some(on) {
                    self.microphone = Some(on);
                    let _ = sender.output(DisplayOutput::Microphone(on));
                }
            }
            DisplayInput::Rebooted => {
                if self.writer_gone() || self.graphics_stopped {
                    self.graphics_stopped = false;
                    sender.input(DisplayInput::Reconnect);
                }
            }
            DisplayInput::Reconnect => {
                self.status = Some(tr("display-connecting"));
                self.detail.clear();
                start_reader(
                    self.socket.clone(),
                    self.writer.clone(),
                    self.frame_taken.clone(),
                    sender.input_sender().clone(),
                );
            }
            DisplayInput::Key(code, down) => {
                let Some(evdev) = code.checked_sub(8).and_then(|c| u16::try_from(c).ok()) else {
                    return;
                };
                if down {
                    if !self.captured {
                        return;
                    }
                    self.held.insert(evdev);
                } else if !self.held.remove(&evdev) {
                    // Pressed before the window had the keyboard: not the guest's.
                    return;
                }
                self.send(Message::Key { code: evdev, down });
            }
            DisplayInput::ReleaseKeyboard => {
                self.captured = false;
                self.release_held_keys();
                self.apply_capture();
            }
            DisplayInput::CaptureKeyboard => {
                self.captured = true;
                self.apply_capture();
            }
            DisplayInput::Active(active) => {
                if !active {
                    self.release_held_keys();
                }
                self.apply_capture();
            }
            DisplayInput::Motion(x, y) => {
                if let Some((x, y)) = self.to_tablet(x, y) {
                    self.send(Message::Pointer { x, y });
                }
            }
            DisplayInput::Button(b, down) => {
                let code = match b {
                    1 => BTN_LEFT,
                    2 => BTN_MIDDLE,
                    3 => BTN_RIGHT,
                    _ => return,
                };
                self.send(Message::Button { code, down });
            }
            DisplayInput::Scroll(dx, dy) => {
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "discrete wheel clicks are small whole numbers"
                )]
                let (dx, dy) = (dx.round() as i32, -(dy.round() as i32));
                if dx != 0 || dy != 0 {
                    self.send(Message::Wheel { dx, dy });
                }
            }
            DisplayInput::Resized(w, h) => {
                if (w, h) == self.area || w < 64 || h < 64 {
                    return;
                }
                self.area = (w, h);
                self.area_changes += 1;
                let (s, change) = (sender.input_sender().clone(), self.area_changes);
                glib::timeout_add_local_once(std::time::Duration::from_millis(300), move || {
                    s.emit(DisplayInput::AskSize(change));
                });
            }
            DisplayInput::AskSize(change) => {
                // Only the last change of a burst (a drag) asks the guest.
                if change == self.area_changes {
                    let (width, height) = self.area;
                    self.send(Message::Resize {
                        scanout: 0,
                        width,
                        height,
                    });
                }
            }
            DisplayInput::ToggleFullscreen => {
                // Shown at once; the window manager's answer (Fullscreened) has the last word.
                self.fullscreen = !self.fullscreen;
                self.pointer_at_top = false;
                if self.fullscreen {
                    self.window.fullscreen();
                } else {
                    self.window.unfullscreen();
                }
            }
            DisplayInput::Fullscreened(on) => self.fullscreen = on,
            DisplayInput::PointerY(y) => {
                let at_top = if self.pointer_at_top {
                    y < 64.0
                } else {
                    y < 4.0
                };
                self.pointer_at_top = at_top;
            }
        }
    }
}

impl Display {
    /// Drops the connection and what it showed.
    fn forget_connection(&mut self) {
        *self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        self.held.clear();
        self.screen.clear();
        self.has_picture = false;
        self.picture.set_cursor(None);
    }

    /// Whether the connection is gone (the Reconnect button shows then).
    fn writer_gone(&self) -> bool {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none()
            && self.status.as_deref() == Some(tr("display-lost").as_str())
    }
}
