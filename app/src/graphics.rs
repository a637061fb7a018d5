//! Whether this computer can give VMs 3D acceleration, asked once per app run, off the main
//! thread and in a child process (`phyllome --probe-graphics`): a broken OpenGL driver can
//! abort the process that loads it, and that must not be the app. The child prints one line
//! that this module reads back and turns into a sentence for the user.

use crate::i18n::{tr, tr_args};
use phyllome_vmm::graphics_probe::{self, GraphicsProbeError};
use std::process::Command;

/// The flag that makes the app's binary run the probe and print its line.
pub const PROBE_FLAG: &str = "--probe-graphics";

/// What the wizard and the settings show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Graphics3d {
    /// 3D can be offered; the renderer's name, and whether it draws on the CPU.
    Available {
        /// `GL_RENDERER`.
        renderer: String,
        /// Mesa's software rasterizer.
        software: bool,
    },
    /// It cannot; the sentence says why and what to do.
    Unavailable(String),
}

/// The child's side: probes and prints one line (`ok`, tab, software flag, tab, renderer;
/// or the failure's kind, tab, detail).
pub fn print_probe() {
    let line = match graphics_probe::probe() {
        Ok(found) => format!(
            "ok\t{}\t{}",
            u8::from(found.is_software()),
            one_line(&found.renderer)
        ),
        Err(GraphicsProbeError::DisabledByUser) => "disabled\t".to_owned(),
        Err(GraphicsProbeError::NotBuilt) => "not-built\t".to_owned(),
        Err(GraphicsProbeError::NoEgl(d)) => format!("no-egl\t{}", one_line(&d)),
        Err(GraphicsProbeError::NoDisplay(d)) => format!("no-display\t{}", one_line(&d)),
        Err(GraphicsProbeError::NoContext(d)) => format!("no-context\t{}", one_line(&d)),
    };
    println!("{line}");
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\t'], " ")
}

/// Reads the child's line.
pub fn parse_probe(line: &str) -> Graphics3d {
    let mut fields = line.trim_end_matches('\n').splitn(3, '\t');
    let kind = fields.next().unwrap_or_default();
    let detail = fields.next().unwrap_or_default();
    match kind {
        "ok" => Graphics3d::Available {
            software: detail == "1",
            renderer: fields.next().unwrap_or_default().to_owned(),
        },
        "disabled" => Graphics3d::Unavailable(tr("graphics-disabled")),
        "not-built" => Graphics3d::Unavailable(tr("graphics-not-built")),
        "no-egl" => Graphics3d::Unavailable(tr_args("graphics-no-egl", &[("detail", detail)])),
        "no-display" => {
            Graphics3d::Unavailable(tr_args("graphics-no-display", &[("detail", detail)]))
        }
        "no-context" => {
            Graphics3d::Unavailable(tr_args("graphics-no-context", &[("detail", detail)]))
        }
        _ => Graphics3d::Unavailable(tr("graphics-probe-failed")),
    }
}

/// Runs the probe in a child process (blocking: call it off the main thread).
pub fn probe() -> Graphics3d {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(_) => return Graphics3d::Unavailable(tr("graphics-probe-failed")),
    };
    match Command::new(exe).arg(PROBE_FLAG).output() {
        Ok(out) if out.status.success() => parse_probe(&String::from_utf8_lossy(&out.stdout)),
        Ok(out) => {
            use std::os::unix::process::ExitStatusExt;
            let how = out
                .status
                .signal()
                .map_or_else(|| out.status.to_string(), |s| format!("signal {s}"));
            Graphics3d::Unavailable(tr_args("graphics-probe-crashed", &[("how", &how)]))
        }
        Err(_) => Graphics3d::Unavailable(tr("graphics-probe-failed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_lines_become_what_the_wizard_shows() {
        assert_eq!(
            parse_probe("ok\t1\tllvmpipe (LLVM 15.0.6, 256 bits)\n"),
            Graphics3d::Available {
                renderer: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
                software: true
            }
        );
        assert_eq!(
            parse_probe("ok\t0\tAMD Radeon\n"),
            Graphics3d::Available {
                renderer: "AMD Radeon".into(),
                software: false
            }
        );
        let Graphics3d::Unavailable(why) = parse_probe("no-display\tEGL_NOT_INITIALIZED\n") else {
            panic!("a failed probe offers 3D")
        };
        assert!(why.contains("EGL_NOT_INITIALIZED"), "{why}");
        assert!(matches!(
            parse_probe("disabled\t\n"),
            Graphics3d::Unavailable(w) if w.contains("GDK_DEBUG")
        ));
        assert!(matches!(parse_probe(""), Graphics3d::Unavailable(_)));
    }
}
