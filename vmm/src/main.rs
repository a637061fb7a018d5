//! `phyllome-vmm`: runs a VM headless. Exit status 0 when the guest powers off (or resets
//! under `--no-reboot`); otherwise 1 with a one-line error on stderr.

use clap::Parser;
use phyllome_vmm::cli::{Cli, Command, DisplayAction};
use phyllome_vmm::console_conn::client::ConsoleClient;
use phyllome_vmm::console_conn::Message;
use phyllome_vmm::{SerialOutput, Vm, VmCommand, VmEvent};
use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Run(args) => args,
        Command::Device(device) => return phyllome_vmm::serve::device(device),
        Command::Display { socket, action } => return display(&socket, action),
    };
    let config = match args.to_config() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let forward_stdin = config.serial.output == SerialOutput::Stdio;
    let handle = match Vm::start(config) {
        Ok(h) => h,
        Err(e) => return fail(&e),
    };
    if forward_stdin {
        forward_stdin_to_serial(&handle);
    }
    let reason = handle.wait(|event| {
        if let VmEvent::Error(message)
        | VmEvent::GraphicsStopped(message)
        | VmEvent::NetworkDown(message) = event
        {
            eprintln!("phyllome-vmm: {message}");
        }
    });
    if reason.is_clean() {
        ExitCode::SUCCESS
    } else {
        fail(&reason)
    }
}

/// `display`: one request to a running VM's display, as the app would send it.
fn display(socket: &std::path::Path, action: DisplayAction) -> ExitCode {
    let messages: Vec<Message> = match action {
        DisplayAction::Resize { size } => vec![Message::Resize {
            scanout: 0,
            width: size.width,
            height: size.height,
        }],
        DisplayAction::Key { codes } => codes
            .iter()
            .flat_map(|&code| [true, false].map(|down| Message::Key { code, down }))
            .collect(),
    };
    let sent = ConsoleClient::connect(socket)
        .and_then(|mut c| messages.into_iter().try_for_each(|m| c.send(m)));
    match sent {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!(
            "Cannot reach the display at {}: {e} Is the VM running with a display socket, and no app attached?",
            socket.display()
        )),
    }
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("phyllome-vmm: {error}");
    ExitCode::FAILURE
}

/// Sends what is typed on stdin to the guest's serial port. The thread ends at EOF, and
/// with the process otherwise.
fn forward_stdin_to_serial(handle: &phyllome_vmm::VmHandle) {
    let sender = handle.command_sender();
    let _ = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut buf = [0u8; 256];
            let mut stdin = std::io::stdin();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0
                    || sender
                        .send(VmCommand::SerialInput(buf[..n].to_vec()))
                        .is_err()
                {
                    break;
                }
            }
        });
}
