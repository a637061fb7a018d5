//! Phyllome's desktop app: the VM library (`phyllome`, or `phyllome FILE.iso` to open the
//! install wizard on an installer image, as GNOME Boxes does), and the display window alone
//! on a running VM's console connection (`phyllome --console PATH [--name NAME]`). It is
//! also a 3D VM's graphics process (`phyllome device gpu ...`, started by the VMM).

use phyllome::display;
use phyllome::graphics;
use phyllome::i18n::tr;
use phyllome::library::{Library, LibraryInit};

use relm4::gtk::prelude::*;
use relm4::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before GTK: a 3D VM's graphics process (the VMM starts this program as
    // `phyllome device gpu ...`; see phyllome_vmm::gpu_process) serves and leaves.
    if std::env::args_os().nth(1).is_some_and(|a| a == "device") {
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
        return phyllome_vmm::serve::main_with_args(std::env::args_os().skip(2));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Before GTK: the graphics probe's child prints its line and leaves.
    if args.first().map(String::as_str) == Some(graphics::PROBE_FLAG) {
        graphics::print_probe();
        return ExitCode::SUCCESS;
    }
    if let Err(e) = phyllome::register_resources() {
        eprintln!("phyllome: the app's bundled resources are damaged: {e}");
    }
    match args.as_slice() {
        [flag, path, rest @ ..] if flag == "--console" && matches!(rest.len(), 0 | 2) => {
            let name = match rest {
                [n, name] if n == "--name" => name.clone(),
                [] => tr("display-default-name"),
                _ => usage(),
            };
            relm_app().run::<display::Display>(display::DisplayInit {
                socket: path.into(),
                name,
                thumbnail: None,
                // A bare viewer has no VM handle to tell: no microphone button.
                microphone: None,
            });
        }
        [flag] if flag == "--help" || flag == "-h" => usage(),
        [] => relm_app().run::<Library>(LibraryInit {
            tray: true,
            ..LibraryInit::default()
        }),
        [iso] if !iso.starts_with('-') => {
            let path = PathBuf::from(iso);
            let path = std::path::absolute(&path).unwrap_or(path);
            relm_app().run::<Library>(LibraryInit {
                install: Some(path),
                tray: true,
                ..LibraryInit::default()
            });
        }
        _ => usage(),
    }
    ExitCode::SUCCESS
}

/// The GTK application, without our arguments (GTK must not see them).
fn relm_app<M: std::fmt::Debug + 'static>() -> RelmApp<M> {
    let app = RelmApp::new(phyllome::APP_ID).with_args(Vec::new());
    // Set after the ID (the application object exists before it): GTK loads style.css and
    // icons/ from here.
    relm4::main_application().set_resource_base_path(Some(phyllome::RESOURCE_PATH));
    app
}

fn usage() -> ! {
    eprintln!("usage: phyllome [INSTALLER.iso] | phyllome --console SOCKET [--name NAME]");
    std::process::exit(2);
}
