//! Phyllome's app, as a library for its binary and its benchmarks: the display window and
//! the pieces it is made of.

pub mod display;
pub mod frames;
pub mod screen;
