//! The guest's screen as a `GdkPaintable` that takes damage: a base texture for the whole
//! frame plus small textures for the rectangles that changed since, drawn over it. GTK
//! 4.8 cannot update part of a texture, and a new full-frame texture per update would upload
//! every pixel every time (a blinking cursor would cost a whole 1080p frame): with patches
//! only the damaged pixels are uploaded. The reader thread decides when patches have piled
//! up enough to send a fresh full frame instead (see `display::Damage`).

use relm4::gtk::prelude::*;
use relm4::gtk::subclass::prelude::*;
use relm4::gtk::{gdk, glib, graphene};
use std::cell::RefCell;

/// Pixels for a texture: rows with opaque alpha.
#[derive(Debug)]
pub struct Pixels {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row.
    pub stride: u32,
    /// The byte order of a pixel.
    pub format: gdk::MemoryFormat,
    /// The rows.
    pub bytes: Vec<u8>,
}

impl Pixels {
    /// A GDK texture of these pixels (no copy: GTK takes the bytes).
    pub fn into_texture(self) -> Option<gdk::Texture> {
        let width = i32::try_from(self.width).ok()?;
        let height = i32::try_from(self.height).ok()?;
        if width == 0
            || height == 0
            || self.bytes.len() < self.stride as usize * self.height as usize
        {
            return None;
        }
        let bytes = glib::Bytes::from_owned(self.bytes);
        Some(
            gdk::MemoryTexture::new(width, height, self.format, &bytes, self.stride as usize)
                .upcast(),
        )
    }
}

/// A changed rectangle, drawn over the base.
#[derive(Debug)]
struct Patch {
    texture: gdk::Texture,
    x: f32,
    y: f32,
    width: f32,
    height: f32,
}

#[derive(Debug, Default)]
struct State {
    base: Option<gdk::Texture>,
    size: (u32, u32),
    patches: Vec<Patch>,
}

mod imp {
    use super::*;

    #[derive(Debug, Default)]
    pub struct GuestScreen {
        pub(super) state: RefCell<State>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for GuestScreen {
        const NAME: &'static str = "PhyllomeGuestScreen";
        type Type = super::GuestScreen;
        type Interfaces = (gdk::Paintable,);
    }

    impl ObjectImpl for GuestScreen {}

    impl PaintableImpl for GuestScreen {
        fn intrinsic_width(&self) -> i32 {
            i32::try_from(self.state.borrow().size.0).unwrap_or(0)
        }

        fn intrinsic_height(&self) -> i32 {
            i32::try_from(self.state.borrow().size.1).unwrap_or(0)
        }

        fn snapshot(&self, snapshot: &gdk::Snapshot, width: f64, height: f64) {
            let Some(snapshot) = snapshot.downcast_ref::<relm4::gtk::Snapshot>() else {
                return;
            };
            let state = self.state.borrow();
            let Some(base) = &state.base else { return };
            #[allow(
                clippy::cast_possible_truncation,
                reason = "widget sizes are far below f32's exact range"
            )]
            let (w, h) = (width as f32, height as f32);
            snapshot.append_texture(base, &graphene::Rect::new(0.0, 0.0, w, h));
            let (iw, ih) = state.size;
            if iw == 0 || ih == 0 {
                return;
            }
            #[allow(clippy::cast_precision_loss, reason = "screen sizes are small")]
            let (sx, sy) = (w / iw as f32, h / ih as f32);
            for p in &state.patches {
                snapshot.append_texture(
                    &p.texture,
                    &graphene::Rect::new(p.x * sx, p.y * sy, p.width * sx, p.height * sy),
                );
            }
        }
    }
}

glib::wrapper! {
    /// The guest's screen.
    pub struct GuestScreen(ObjectSubclass<imp::GuestScreen>) @implements gdk::Paintable;
}

impl Default for GuestScreen {
    fn default() -> Self {
        glib::Object::new()
    }
}

impl GuestScreen {
    /// A whole new frame: replaces the picture and drops the patches.
    pub fn set_frame(&self, frame: Pixels) {
        let size = (frame.width, frame.height);
        let Some(texture) = frame.into_texture() else {
            return;
        };
        let resized = {
            let mut s = self.imp().state.borrow_mut();
            let resized = s.size != size;
            s.base = Some(texture);
            s.size = size;
            s.patches.clear();
            resized
        };
        if resized {
            self.invalidate_size();
        }
        self.invalidate_contents();
    }

    /// A changed rectangle at (`x`, `y`) of the current frame.
    pub fn add_patch(&self, x: u32, y: u32, pixels: Pixels) {
        #[allow(clippy::cast_precision_loss, reason = "screen sizes are small")]
        let (width, height) = (pixels.width as f32, pixels.height as f32);
        let Some(texture) = pixels.into_texture() else {
            return;
        };
        {
            let mut s = self.imp().state.borrow_mut();
            if s.base.is_none() {
                return;
            }
            #[allow(clippy::cast_precision_loss, reason = "screen sizes are small")]
            s.patches.push(Patch {
                texture,
                x: x as f32,
                y: y as f32,
                width,
                height,
            });
        }
        self.invalidate_contents();
    }

    /// Forgets the picture (the display went away).
    pub fn clear(&self) {
        *self.imp().state.borrow_mut() = State::default();
        self.invalidate_size();
        self.invalidate_contents();
    }

    /// How many patches are drawn over the base (for tests and the benchmark).
    pub fn patch_count(&self) -> usize {
        self.imp().state.borrow().patches.len()
    }

    /// The frame's size in guest pixels.
    pub fn size(&self) -> (u32, u32) {
        self.imp().state.borrow().size
    }
}
