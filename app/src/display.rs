//! The display window: the guest's screen from a console connection
//! ([`phyllome_vmm::console_conn`]), kept at its aspect ratio, with keyboard and pointer
//! sent back to the guest. A reader thread receives frames and converts each updated image
//! into texture bytes (the only copy on this side: shared buffer to texture memory); the
//! GTK main loop only wraps them in a texture. When the connection dies the window says
//! so and offers to reconnect.

use phyllome_vmm::console_conn::client::{ConsoleClient, Received};
use phyllome_vmm::console_conn::Message;
use relm4::adw::prelude::*;
use relm4::gtk::{gdk, glib};
use relm4::prelude::*;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// evdev buttons.
const BTN_LEFT: u16 = 0x110;
const BTN_RIGHT: u16 = 0x111;
const BTN_MIDDLE: u16 = 0x112;
/// The tablet's axis range.
const TABLET_MAX: f64 = 32767.0;

/// A frame ready for a texture: RGBA-compatible BGRA bytes with opaque alpha.
#[derive(Debug)]
pub struct FrameBytes {
    width: u32,
    height: u32,
    /// Bytes per row (a scanout may show part of a wider resource).
    stride: u32,
    bytes: Vec<u8>,
}

/// Messages to the window.
#[derive(Debug)]
pub enum DisplayInput {
    /// A new image.
    Frame(FrameBytes),
    /// The connection is up.
    Connected,
    /// The connection ended, with why.
    Lost(String),
    /// The user asked to reconnect.
    Reconnect,
    /// A key (hardware keycode) went down or up.
    Key(u32, bool),
    /// The pointer is at (x, y) in widget coordinates.
    Motion(f64, f64),
    /// A mouse button (GDK numbering) went down or up.
    Button(u32, bool),
    /// The screen area now has this size in device pixels.
    Resized(u32, u32),
    /// A resize settled (the number says which): ask the guest for that size.
    AskSize(u64),
}

/// The window's state.
pub struct Display {
    socket: PathBuf,
    texture: Option<gdk::Texture>,
    image_size: (u32, u32),
    status: Option<String>,
    /// Why, under the status.
    detail: String,
    writer: Arc<Mutex<Option<ConsoleClient>>>,
    picture: gtk::Picture,
    /// The screen area's size, and how many times it changed.
    area: (u32, u32),
    area_changes: u64,
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

    /// Widget coordinates to the tablet's 0..=32767 range over the shown image
    /// (`Picture` letterboxes the image inside the widget).
    fn to_tablet(&self, x: f64, y: f64) -> Option<(u32, u32)> {
        let (iw, ih) = (f64::from(self.image_size.0), f64::from(self.image_size.1));
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
            "The virtual machine stopped, or its graphics device closed the connection.".into()
        }
        ConnError::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            "The virtual machine is not running (nothing listens on its display socket).".into()
        }
        other => other.to_string(),
    }
}

/// Connects and runs the reader thread, reporting to `sender`.
fn start_reader(
    socket: PathBuf,
    writer: Arc<Mutex<Option<ConsoleClient>>>,
    sender: relm4::Sender<DisplayInput>,
) {
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
        let mut current = None;
        loop {
            match client.recv() {
                Ok(Received::Scanout {
                    info:
                        Message::Scanout {
                            scanout: 0,
                            width,
                            height,
                            stride,
                            ..
                        },
                    buffer,
                }) => {
                    current = Some((width, height, stride, buffer));
                }
                Ok(Received::Other(Message::Update { scanout: 0, .. })) => {
                    if let Some((width, height, stride, buffer)) = &current {
                        let mut bytes = vec![0u8; *stride as usize * *height as usize];
                        if !buffer.read(0, &mut bytes) {
                            continue;
                        }
                        // X formats leave the alpha byte undefined: make it opaque.
                        for px in bytes.chunks_exact_mut(4) {
                            px[3] = 0xff;
                        }
                        sender.emit(DisplayInput::Frame(FrameBytes {
                            width: *width,
                            height: *height,
                            stride: *stride,
                            bytes,
                        }));
                    }
                }
                Ok(Received::Other(Message::Disabled { scanout: 0 })) => current = None,
                Ok(_) => {}
                Err(e) => {
                    sender.emit(DisplayInput::Lost(reason(&e)));
                    return;
                }
            }
        }
    });
}

#[relm4::component(pub)]
impl SimpleComponent for Display {
    type Init = PathBuf;
    type Input = DisplayInput;
    type Output = ();

    view! {
        adw::ApplicationWindow {
            set_title: Some("Phyllome"),
            set_default_width: 800,
            set_default_height: 600,

            gtk::Box {
                set_orientation: gtk::Orientation::Vertical,
                adw::HeaderBar {},
                gtk::Stack {
                    set_vexpand: true,
                    add_named[Some("screen")] = &model.picture.clone() -> gtk::Picture {},
                    add_named[Some("status")] = &adw::StatusPage {
                        set_icon_name: Some("video-display-symbolic"),
                        #[watch]
                        set_title: model.status.as_deref().unwrap_or(""),
                        #[watch]
                        set_description: Some(&model.detail),
                        gtk::Button {
                            set_label: "Reconnect",
                            set_halign: gtk::Align::Center,
                            add_css_class: "pill",
                            connect_clicked => DisplayInput::Reconnect,
                        },
                    },
                    #[watch]
                    set_visible_child_name: if model.status.is_some() { "status" } else { "screen" },
                },
            }
        }
    }

    fn init(
        socket: PathBuf,
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let picture = gtk::Picture::new();
        picture.set_content_fit(gtk::ContentFit::Contain);
        picture.set_can_focus(true);
        picture.set_focusable(true);
        let model = Display {
            socket: socket.clone(),
            texture: None,
            image_size: (0, 0),
            status: Some("Connecting to the display…".into()),
            detail: String::new(),
            writer: Arc::new(Mutex::new(None)),
            picture,
            area: (0, 0),
            area_changes: 0,
        };
        let widgets = view_output!();

        // Keys go to the guest while the window has focus (evdev = X/Wayland keycode - 8).
        let keys = gtk::EventControllerKey::new();
        let s = sender.input_sender().clone();
        keys.connect_key_pressed(move |_, _, code, _| {
            s.emit(DisplayInput::Key(code, true));
            glib::Propagation::Stop
        });
        let s = sender.input_sender().clone();
        keys.connect_key_released(move |_, _, code, _| s.emit(DisplayInput::Key(code, false)));
        root.add_controller(keys);
        let motion = gtk::EventControllerMotion::new();
        let s = sender.input_sender().clone();
        motion.connect_motion(move |_, x, y| s.emit(DisplayInput::Motion(x, y)));
        model.picture.add_controller(motion);
        let click = gtk::GestureClick::new();
        click.set_button(0);
        let s = sender.input_sender().clone();
        click.connect_pressed(move |g, _, _, _| {
            s.emit(DisplayInput::Button(g.current_button(), true))
        });
        let s = sender.input_sender().clone();
        click.connect_released(move |g, _, _, _| {
            s.emit(DisplayInput::Button(g.current_button(), false))
        });
        model.picture.add_controller(click);

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

        start_reader(socket, model.writer.clone(), sender.input_sender().clone());
        ComponentParts { model, widgets }
    }

    fn update(&mut self, msg: DisplayInput, sender: ComponentSender<Self>) {
        match msg {
            DisplayInput::Frame(f) => {
                let bytes = glib::Bytes::from_owned(f.bytes);
                let texture = gdk::MemoryTexture::new(
                    i32::try_from(f.width).unwrap_or(0),
                    i32::try_from(f.height).unwrap_or(0),
                    gdk::MemoryFormat::B8g8r8a8,
                    &bytes,
                    f.stride as usize,
                );
                self.image_size = (f.width, f.height);
                self.picture.set_paintable(Some(&texture));
                self.texture = Some(texture.upcast());
                self.status = None;
            }
            DisplayInput::Connected => {
                if self.texture.is_none() {
                    self.status = Some("Waiting for the guest's display…".into());
                }
            }
            DisplayInput::Lost(why) => {
                *self
                    .writer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                self.status = Some("The display was lost".into());
                self.detail = why;
            }
            DisplayInput::Reconnect => {
                self.status = Some("Connecting to the display…".into());
                self.detail.clear();
                start_reader(
                    self.socket.clone(),
                    self.writer.clone(),
                    sender.input_sender().clone(),
                );
            }
            DisplayInput::Key(code, down) => {
                if let Some(evdev) = code.checked_sub(8).and_then(|c| u16::try_from(c).ok()) {
                    self.send(Message::Key { code: evdev, down });
                }
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
        }
    }
}
