//! Phyllome's virtual machine monitor.
//!
//! This crate turns a [`VmConfig`] into a running KVM virtual machine and hands back a
//! [`VmHandle`], the only way in: commands go in, events come out, and nothing on the
//! caller's side ever blocks on KVM. It has no GUI dependencies, so the desktop app and
//! the headless `phyllome-vmm` binary drive it the same way.

pub mod api;
pub mod arch;
pub mod boot;
pub mod cli;
pub mod config;
pub mod console_conn;
pub mod devices;
pub mod exit;
pub mod firmware_link;
pub mod gpu_process;
pub mod graphics_probe;
pub mod host;
pub mod irq_routing;
pub mod media;
pub mod memory;
pub mod network;
pub mod one_client;
pub mod sandbox;
pub mod serial_sink;
pub mod serve;
pub mod vcpu;
pub mod vhost_user;
pub mod vm;

pub use api::{StopReason, VmCommand, VmEvent, VmHandle};
pub use config::{SerialOutput, VmConfig};
pub use vm::{Vm, VmError};
