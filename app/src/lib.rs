//! Phyllome's app, as a library for its binary and its benchmarks: the display window and
//! the pieces it is made of, translations, and the VM library's store.

pub mod display;
pub mod frames;
pub mod i18n;
pub mod screen;
pub mod store;
