//! Phyllome's desktop app. For now a window that says what the app will be and whether
//! this computer can run VMs, and (`phyllome --console PATH`) the display window on a
//! running VM's console connection; the VM library and wizard come in their own issue.

use phyllome::display;
use phyllome::i18n::tr;

use relm4::adw::prelude::*;
use relm4::prelude::*;

/// The main window.
struct App {
    kvm_status: String,
}

#[relm4::component]
impl SimpleComponent for App {
    type Init = String;
    type Input = ();
    type Output = ();

    view! {
        adw::ApplicationWindow {
            set_title: Some(&tr("app-name")),
            set_default_width: 720,
            set_default_height: 480,

            gtk::Box {
                set_orientation: gtk::Orientation::Vertical,
                adw::HeaderBar {},
                adw::StatusPage {
                    set_vexpand: true,
                    set_icon_name: Some("computer-symbolic"),
                    set_title: &tr("welcome-title"),
                    #[watch]
                    set_description: Some(&model.kvm_status),
                },
            }
        }
    }

    fn init(
        kvm_status: String,
        root: Self::Root,
        _sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        gtk::Window::set_default_icon_name(phyllome::APP_ID);
        let model = App { kvm_status };
        let widgets = view_output!();
        ComponentParts { model, widgets }
    }
}

/// A sentence about this computer's KVM, without opening a VM.
fn kvm_status() -> String {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) if phyllome_vmm::host::has_hardware_virtualization() => tr("kvm-ready"),
        Ok(_) => tr("kvm-software"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => tr("kvm-missing"),
        Err(_) => tr("kvm-no-permission"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
            });
        }
        [] => relm_app().run::<App>(kvm_status()),
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
    eprintln!("usage: phyllome [--console SOCKET [--name NAME]]");
    std::process::exit(2);
}
