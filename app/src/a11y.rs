//! Names for screen readers (and for the UI tests, which read the accessibility tree): an
//! icon-only button says nothing by itself. GTK has had `gtk_accessible_update_property_value`
//! since 4.0, but the Rust bindings expose it only from 4.10, so it is declared here.

use relm4::gtk::glib::translate::{ToGlibPtr, ToGlibPtrMut};
use relm4::gtk::prelude::*;
use relm4::gtk::{self, glib};

extern "C" {
    /// `void gtk_accessible_update_property_value (GtkAccessible *self, int n_properties,
    /// GtkAccessibleProperty properties[], const GValue values[])`, in libgtk-4.
    fn gtk_accessible_update_property_value(
        accessible: *mut gtk::ffi::GtkWidget,
        n_properties: std::ffi::c_int,
        properties: *mut gtk::ffi::GtkAccessibleProperty,
        values: *const glib::gobject_ffi::GValue,
    );
}

/// Gives `widget` the accessible label `label`.
pub fn set_label(widget: &impl IsA<gtk::Widget>, label: &str) {
    let mut properties = [gtk::ffi::GTK_ACCESSIBLE_PROPERTY_LABEL];
    let mut value = label.to_value();
    // SAFETY: every GtkWidget implements GtkAccessible, so the widget pointer is a valid
    // `GtkAccessible *` for as long as `widget` lives (the whole call); the property and
    // value arrays hold one element each, as n_properties says; the value is an
    // initialized GValue holding a string, the type GTK expects for LABEL, and GTK copies
    // it before returning.
    unsafe {
        gtk_accessible_update_property_value(
            widget.as_ref().to_glib_none().0,
            1,
            properties.as_mut_ptr(),
            value.to_glib_none_mut().0,
        );
    }
}
