//! The `device` subcommands (one virtio device served over vhost-user until its frontend
//! leaves), shared by `phyllome-vmm` and the app's binary: the VMM starts a 3D VM's GPU as
//! `<its own program> device gpu ...`, so the app needs no second program installed.

use crate::cli::DeviceCommand;
use crate::config::CdromConfig;
use crate::devices::bus::lock;
use crate::devices::scsi::Medium;
use crate::devices::virtio::blk::{Block, Disk};
use crate::devices::virtio::console::endpoint::{self, ConsoleEndpoint};
use crate::devices::virtio::rng::Rng;
use crate::devices::virtio::scsi::{Drive, Scsi};
use crate::devices::virtio::snd::{self, Snd};
use crate::media;
use crate::network::card::{NetworkCard, Notice};
use crate::network::passt::PasstOptions;
use crate::network::{Forward, NetworkConfig};
use crate::vhost_user;
use clap::Parser;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

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
        DeviceCommand::Snd {
            socket,
            sound,
            microphone,
            name,
        } => {
            let mic = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(microphone));
            match Snd::new(snd::backend_for(sound, &name, mic)) {
                Ok(card) => vhost_user::serve("phyllome-snd", card, &socket),
                Err(e) => return fail(&e),
            }
        }
        DeviceCommand::Rng { socket, rate } => {
            vhost_user::serve("phyllome-rng", Rng::new(rate), &socket)
        }
        DeviceCommand::Console { socket, output } => return console(&socket, &output),
        DeviceCommand::Scsi { socket, cdrom } => return scsi(&socket, &cdrom),
        DeviceCommand::Net {
            socket,
            passt: _,
            forward,
        } => return net(&socket, forward),
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

/// A disc change typed on `device scsi`'s standard input.
#[derive(Debug, PartialEq, Eq)]
enum DiscCommand {
    Eject { drive: usize, force: bool },
    Insert { drive: usize, path: PathBuf },
}

/// `eject N [force]` or `insert N PATH` (the path is the rest of the line).
fn disc_command(line: &str) -> Result<DiscCommand, String> {
    let usage = "type `eject N`, `eject N force` or `insert N PATH`";
    let line = line.trim();
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    let (number, rest) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
    let drive: usize = number
        .parse()
        .map_err(|_| format!("'{number}' is not a drive number; {usage}"))?;
    match (verb, rest.trim()) {
        ("eject", "") => Ok(DiscCommand::Eject {
            drive,
            force: false,
        }),
        ("eject", "force") => Ok(DiscCommand::Eject { drive, force: true }),
        ("insert", path) if !path.is_empty() => Ok(DiscCommand::Insert {
            drive,
            path: PathBuf::from(path),
        }),
        _ => Err(format!("'{line}' is not a disc command; {usage}")),
    }
}

/// Carries out one disc command on `drives`; the sentence to print.
fn change_disc(drives: &[Drive], command: DiscCommand) -> String {
    let (DiscCommand::Eject { drive, .. } | DiscCommand::Insert { drive, .. }) = command;
    let Some(slot) = drives.get(drive) else {
        return format!("There is no CD drive {drive}; there are {}.", drives.len());
    };
    match command {
        DiscCommand::Eject { force, .. } => match lock(slot).eject(force) {
            Ok(_) => format!("CD drive {drive}: the disc is out."),
            Err(e) => format!("CD drive {drive}: {e}"),
        },
        DiscCommand::Insert { path, .. } => {
            let medium = match Medium::open(&path) {
                Ok(m) => m,
                Err(e) => return format!("CD drive {drive}: {e}"),
            };
            let mut d = lock(slot);
            match d.eject(false) {
                Ok(_) => {
                    d.insert(medium);
                    format!("CD drive {drive}: {} is in.", path.display())
                }
                Err(e) => format!("CD drive {drive}: {e}"),
            }
        }
    }
}

/// `device scsi`: the drives, and disc changes read from standard input.
fn scsi(socket: &Path, cdroms: &[CdromConfig]) -> ExitCode {
    let drives = match cdroms
        .iter()
        .enumerate()
        .map(|(i, c)| media::drive(i, c))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let changer = drives.clone();
    let _ = std::thread::Builder::new()
        .name("disc changes".into())
        .spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                let said = match disc_command(&line) {
                    Ok(c) => change_disc(&changer, c),
                    Err(e) => e,
                };
                eprintln!("phyllome device: {said}");
            }
        });
    match vhost_user::serve("phyllome-scsi", Scsi::new(drives), socket) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// `device net --passt`: the card, with passt behind it for as long as the frontend
/// stays. passt failing is said on standard error and the card serves on, link down.
fn net(socket: &Path, forwards: Vec<Forward>) -> ExitCode {
    let notice: Notice = Arc::new(|why| eprintln!("phyllome device: {why}"));
    let options = PasstOptions {
        forwards,
        program: None,
    };
    let (card, net, failure) = match NetworkCard::open(&NetworkConfig::default(), options, notice) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    if let Some(why) = failure {
        eprintln!("phyllome device: {why}");
    }
    let host = net.host();
    let result = vhost_user::serve("phyllome-net", net, socket);
    // passt goes with the card.
    drop(card);
    log::info!("The network card's counters at the end: {:?}", host.stats());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("phyllome device: {error}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn disc_commands_are_read_and_mistakes_say_what_to_type() {
        assert_eq!(
            disc_command("eject 0"),
            Ok(DiscCommand::Eject {
                drive: 0,
                force: false
            })
        );
        assert_eq!(
            disc_command(" eject 1 force\n"),
            Ok(DiscCommand::Eject {
                drive: 1,
                force: true
            })
        );
        assert_eq!(
            disc_command("insert 0 /tmp/a disc.iso"),
            Ok(DiscCommand::Insert {
                drive: 0,
                path: PathBuf::from("/tmp/a disc.iso")
            })
        );
        for bad in ["eject", "eject x", "insert 0", "open 0", "eject 0 now"] {
            let e = disc_command(bad).unwrap_err();
            assert!(
                e.ends_with("type `eject N`, `eject N force` or `insert N PATH`"),
                "{e}"
            );
        }
    }

    #[test]
    fn disc_changes_reach_the_drive_and_refusals_are_sentences() {
        let dir = tempfile::tempdir().unwrap();
        let iso = dir.path().join("a.iso");
        std::fs::write(&iso, [1u8; 2048]).unwrap();
        let drives = vec![media::drive(0, &CdromConfig { path: None }).unwrap()];
        let said = change_disc(
            &drives,
            DiscCommand::Insert {
                drive: 0,
                path: iso.clone(),
            },
        );
        assert_eq!(said, format!("CD drive 0: {} is in.", iso.display()));
        assert_eq!(lock(&drives[0]).medium().unwrap().path(), iso.as_path());
        let said = change_disc(
            &drives,
            DiscCommand::Eject {
                drive: 3,
                force: false,
            },
        );
        assert_eq!(said, "There is no CD drive 3; there are 1.");
        let said = change_disc(
            &drives,
            DiscCommand::Eject {
                drive: 0,
                force: false,
            },
        );
        assert_eq!(said, "CD drive 0: the disc is out.");
        assert!(lock(&drives[0]).medium().is_none());
    }
}
