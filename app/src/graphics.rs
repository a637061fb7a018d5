//! Whether this computer can give VMs 3D acceleration, asked once per app run, off the main
//! thread and in a child process (`phyllome --probe-graphics`): a broken OpenGL driver can
//! abort the process that loads it, and that must not be the app. The child prints one line
//! that this module reads back and turns into a sentence for the user.

use crate::i18n::{tr, tr_args};
use phyllome_vmm::config::Renderer;
use phyllome_vmm::graphics_probe::{self, GraphicsProbeError, VulkanProbeError};
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
        /// Vulkan for guests (venus): the host's Vulkan device, or the sentence saying why
        /// not.
        vulkan: Result<String, String>,
    },
    /// It cannot; the sentence says why and what to do.
    Unavailable(String),
}

impl Graphics3d {
    /// The renderer a VM gets with 3D turned on: venus (OpenGL and Vulkan) where this
    /// computer can give guests Vulkan, virgl (OpenGL) otherwise.
    pub fn renderer_when_on(&self) -> Renderer {
        match self {
            Self::Available { vulkan: Ok(_), .. } => Renderer::Venus,
            _ => Renderer::Virgl,
        }
    }

    /// The sentence about Vulkan for guests, when OpenGL works.
    pub fn vulkan_sentence(&self) -> Option<String> {
        match self {
            Self::Available { vulkan, .. } => Some(match vulkan {
                Ok(device) => tr_args("graphics-vulkan-available", &[("device", device)]),
                Err(why) => why.clone(),
            }),
            Self::Unavailable(_) => None,
        }
    }
}

/// The child's side: probes and prints two lines. OpenGL's: `ok`, tab, software flag, tab,
/// renderer; or the failure's kind, tab, detail. Then Vulkan's, when OpenGL works:
/// `vulkan`, tab, `ok` or the failure's kind, tab, the device or the detail.
pub fn print_probe() {
    let gl_ok = graphics_probe::probe();
    let line = match &gl_ok {
        Ok(found) => format!(
            "ok\t{}\t{}",
            u8::from(found.is_software()),
            one_line(&found.renderer)
        ),
        Err(GraphicsProbeError::DisabledByUser) => "disabled\t".to_owned(),
        Err(GraphicsProbeError::NotBuilt) => "not-built\t".to_owned(),
        Err(GraphicsProbeError::NoEgl(d)) => format!("no-egl\t{}", one_line(d)),
        Err(GraphicsProbeError::NoDisplay(d)) => format!("no-display\t{}", one_line(d)),
        Err(GraphicsProbeError::NoContext(d)) => format!("no-context\t{}", one_line(d)),
    };
    println!("{line}");
    if gl_ok.is_err() {
        return;
    }
    let (kind, detail) = match graphics_probe::probe_vulkan() {
        Ok(device) => ("ok", device),
        Err(VulkanProbeError::NotBuilt) => ("not-built", String::new()),
        Err(VulkanProbeError::NoLoader(d)) => ("no-loader", d),
        Err(VulkanProbeError::NoDevice(d)) => ("no-device", d),
        Err(VulkanProbeError::NoVenus) => ("no-venus", String::new()),
        Err(VulkanProbeError::RendererTooOld(v)) => ("too-old", v.to_string()),
        Err(VulkanProbeError::Renderer(d)) => ("renderer-failed", d),
    };
    println!("vulkan\t{kind}\t{}", one_line(&detail));
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\t'], " ")
}

/// Reads the child's Vulkan line (missing: the child is older, or said nothing).
fn parse_vulkan(line: Option<&str>) -> Result<String, String> {
    let mut fields = line.unwrap_or_default().splitn(3, '\t');
    let (_, kind, detail) = (
        fields.next(),
        fields.next().unwrap_or_default(),
        fields.next().unwrap_or_default(),
    );
    let detail = [("detail", detail)];
    Err(match kind {
        "ok" => return Ok(detail[0].1.to_owned()),
        "not-built" => tr("graphics-not-built"),
        "no-loader" => tr_args("graphics-vulkan-no-loader", &detail),
        "no-device" => tr_args("graphics-vulkan-no-device", &detail),
        "no-venus" => tr("graphics-vulkan-no-venus"),
        "too-old" => tr("graphics-vulkan-too-old"),
        "renderer-failed" => tr_args("graphics-vulkan-failed", &detail),
        _ => tr("graphics-vulkan-unknown"),
    })
}

/// Reads the child's lines.
pub fn parse_probe(output: &str) -> Graphics3d {
    let mut lines = output.lines();
    let line = lines.next().unwrap_or_default();
    let vulkan = lines.find(|l| l.starts_with("vulkan\t"));
    let mut fields = line.splitn(3, '\t');
    let kind = fields.next().unwrap_or_default();
    let detail = fields.next().unwrap_or_default();
    match kind {
        "ok" => Graphics3d::Available {
            software: detail == "1",
            renderer: fields.next().unwrap_or_default().to_owned(),
            vulkan: parse_vulkan(vulkan),
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
        let llvmpipe = parse_probe(
            "ok\t1\tllvmpipe (LLVM 15.0.6, 256 bits)\nvulkan\tno-device\tERROR_INCOMPATIBLE_DRIVER\n",
        );
        let Graphics3d::Available {
            renderer,
            software: true,
            vulkan: Err(why),
        } = &llvmpipe
        else {
            panic!("{llvmpipe:?}")
        };
        assert_eq!(renderer, "llvmpipe (LLVM 15.0.6, 256 bits)");
        assert!(why.contains("ERROR_INCOMPATIBLE_DRIVER"), "{why}");
        assert!(why.contains("mesa-vulkan-drivers"), "{why}");
        assert_eq!(llvmpipe.renderer_when_on(), Renderer::Virgl);
        let radeon = parse_probe("ok\t0\tAMD Radeon\nvulkan\tok\tAMD Radeon RX 6600\n");
        assert_eq!(
            radeon,
            Graphics3d::Available {
                renderer: "AMD Radeon".into(),
                software: false,
                vulkan: Ok("AMD Radeon RX 6600".into()),
            }
        );
        assert_eq!(radeon.renderer_when_on(), Renderer::Venus);
        assert!(radeon
            .vulkan_sentence()
            .is_some_and(|s| s.contains("AMD Radeon RX 6600")));
        let old = parse_probe("ok\t0\tAMD Radeon\nvulkan\ttoo-old\t0\n");
        assert!(old
            .vulkan_sentence()
            .is_some_and(|s| s.contains("1.0 or newer")));
        // An older child that says nothing about Vulkan: OpenGL only.
        assert_eq!(
            parse_probe("ok\t0\tAMD Radeon\n").renderer_when_on(),
            Renderer::Virgl
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
