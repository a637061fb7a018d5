//! Phyllome's desktop app: the VM library (`phyllome`, or `phyllome FILE.iso` to open the
//! install wizard on an installer image, as GNOME Boxes does), and the display window alone
//! on a running VM's console connection (`phyllome --console PATH [--name NAME]`).

use phyllome::display;
use phyllome::graphics;
use phyllome::i18n::tr;
use phyllome::library::{Library, LibraryInit};

use relm4::gtk::prelude::*;
use relm4::prelude::*;
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Before GTK: the graphics probe's child prints its line and leaves.
    if args.first().map(String::as_str) == Some(graphics::PROBE_FLAG) {
        graphics::print_probe();
        return;
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
