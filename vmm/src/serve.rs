//! The `device` subcommands (one virtio device served over vhost-user until its frontend
//! leaves), shared by `phyllome-vmm` and the app's binary: the VMM starts a 3D VM's GPU as
//! `<its own program> device gpu ...`, so the app needs no second program installed.

use crate::cli::DeviceCommand;
use crate::devices::virtio::blk::{Block, Disk};
use crate::devices::virtio::console::endpoint::{self, ConsoleEndpoint};
use crate::devices::virtio::rng::Rng;
use crate::vhost_user;
use clap::Parser;
use std::ffi::OsString;
use std::io::Read;
use std::process::ExitCode;

/// `device ...` on its own, for a program whose other arguments are not the VMM's.
#[derive(Debug, Parser)]
#[command(name = "device", about = "Serve one virtio device over vhost-user")]
struct DeviceOnly {
    #[command(subcommand)]
    device: DeviceCommand,
}

/// Serves the device that `args` (the words after `device`) names; exit status 0 when its
/// frontend disconnects, else 1 with a one-line error on stderr.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let words = std::iter::once(OsString::from("device")).chain(args);
    match DeviceOnly::try_parse_from(words) {
        Ok(d) => device(d.device),
        Err(e) => {
            let _ = e.print();
            ExitCode::from(2)
        }
    }
}

/// Serves one device over vhost-user; exit status 0 when the frontend disconnects.
pub fn device(device: DeviceCommand) -> ExitCode {
    let result = match device {
        DeviceCommand::Blk {
            socket,
            path,
            readonly,
            format,
            queues,
            poll_us,
            cache,
        } => {
            let disk = match Disk::open_cached(&path, readonly, format, cache) {
                Ok(d) => d,
                Err(e) => return fail(&e),
            };
            let id = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let block = Block::new(disk, &id, queues)
                .with_poll_window(std::time::Duration::from_micros(poll_us));
            vhost_user::serve("phyllome-blk", block, &socket)
        }
        DeviceCommand::Rng { socket, rate } => {
            vhost_user::serve("phyllome-rng", Rng::new(rate), &socket)
        }
        DeviceCommand::Console { socket, output } => return console(&socket, &output),
        DeviceCommand::Gpu {
            socket,
            size,
            input_socket,
            console,
            boot_socket,
            dump_scanout,
            renderer,
            no_sandbox,
            host_visible_mib,
        } => {
            let options = vhost_user::GpuServeOptions {
                socket,
                width: size.width,
                height: size.height,
                input_socket,
                console,
                boot_socket,
                dump_scanout,
                renderer,
                sandbox: !no_sandbox,
                host_visible_mib,
            };
            return match vhost_user::serve_gpu(&options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// `device console`: the port leads to stdio, a file or a socket; with a file, what
/// arrives on stdin is typed into the guest too.
fn console(socket: &std::path::Path, output: &ConsoleEndpoint) -> ExitCode {
    let (console, _threads) = match endpoint::open(output) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    if matches!(output, ConsoleEndpoint::File(_)) {
        let input = console.input();
        let _ = std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                let mut buf = [0u8; 256];
                while let Ok(n) = std::io::stdin().read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    input.push(&buf[..n]);
                }
            });
    }
    match vhost_user::serve("phyllome-console", console, socket) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("phyllome device: {error}");
    ExitCode::FAILURE
}
