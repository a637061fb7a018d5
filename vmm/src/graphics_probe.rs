//! Whether this host can give a guest 3D acceleration: the renderer (virglrenderer) draws
//! with OpenGL ES through EGL, headless (Mesa's surfaceless platform), on a GPU's render
//! node or on the CPU (llvmpipe). This probe does what the renderer will do at start:
//! loads libEGL at run time (a host without it still runs 2D guests), opens the
//! surfaceless display, creates a GLES context and makes it current, and reads the GL
//! renderer's name. Each step that fails becomes a sentence for the user.
//!
//! Vulkan for guests (venus) needs more: a Vulkan driver on the host (libvulkan, then a
//! device) and a virglrenderer whose venus speaks a wire format guests' Mesa knows; the
//! second probe checks both and says which is missing.
//!
//! Mesa can abort the process on a broken driver; callers with something to lose (the
//! app) run the probe in a child process (`phyllome --probe-graphics`).

use khronos_egl as egl;

/// `EGL_PLATFORM_SURFACELESS_MESA`.
const PLATFORM_SURFACELESS_MESA: egl::Enum = 0x31DD;
/// `GL_RENDERER`.
const GL_RENDERER: u32 = 0x1F01;

/// Why 3D acceleration cannot be offered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphicsProbeError {
    /// This build has no 3D renderer.
    #[error("This build of Phyllome has no 3D renderer (built without virglrenderer).")]
    NotBuilt,
    /// The user (or a test) turned OpenGL off for GTK, which we honour too.
    #[error("OpenGL is turned off in this session (GDK_DEBUG=gl-disable).")]
    DisabledByUser,
    /// No libEGL.
    #[error("This computer has no OpenGL library (libEGL): install Mesa (libegl1-mesa) to get 3D acceleration.")]
    NoEgl(String),
    /// libEGL has no usable headless display.
    #[error("OpenGL cannot run without a screen here ({0}): install Mesa's EGL (libegl-mesa0).")]
    NoDisplay(String),
    /// The display exists but no GLES context could be made.
    #[error("The OpenGL driver cannot create a rendering context ({0}).")]
    NoContext(String),
}

/// Why guests cannot have Vulkan (venus) here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VulkanProbeError {
    /// This build has no 3D renderer.
    #[error("This build of Phyllome has no 3D renderer (built without virglrenderer).")]
    NotBuilt,
    /// No libvulkan.
    #[error("This computer has no Vulkan library ({0}): install libvulkan1 and a Vulkan driver to give guests Vulkan.")]
    NoLoader(String),
    /// libvulkan found no device.
    #[error("This computer has no Vulkan driver ({0}): install your GPU's, or Mesa's (mesa-vulkan-drivers), to give guests Vulkan.")]
    NoDevice(String),
    /// virglrenderer was built without venus.
    #[error("This computer's virglrenderer was built without Vulkan support (venus).")]
    NoVenus,
    /// virglrenderer's venus is too old for guests.
    #[error("This computer's virglrenderer is too old to give guests Vulkan (its venus wire format is {0}; guests need virglrenderer 1.0 or newer).")]
    RendererTooOld(u32),
    /// virglrenderer did not start.
    #[error("{0}")]
    Renderer(String),
}

/// What the probe found: the renderer's name (such as "llvmpipe (LLVM 15.0.6, 256 bits)"),
/// and whether it runs on a GPU's render node rather than on the CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicsSupport {
    /// `GL_RENDERER`.
    pub renderer: String,
    /// A render node exists (`/dev/dri/renderD*`).
    pub render_node: bool,
}

impl GraphicsSupport {
    /// Whether the renderer draws on the CPU (Mesa's software rasterizers).
    pub fn is_software(&self) -> bool {
        let r = self.renderer.to_lowercase();
        r.contains("llvmpipe") || r.contains("softpipe") || r.contains("swrast")
    }
}

/// Whether this build can render 3D at all (the `virgl` feature, virglrenderer).
pub const BUILT_WITH_3D: bool = cfg!(feature = "virgl");

/// Whether `GDK_DEBUG` (a comma- or space-separated list) turns GL off.
pub fn gl_disabled_by(gdk_debug: &str) -> bool {
    gdk_debug
        .split([',', ' ', ':', ';'])
        .any(|f| f.trim() == "gl-disable")
}

/// Whether the host has a DRM render node.
fn has_render_node() -> bool {
    std::fs::read_dir("/dev/dri").is_ok_and(|dir| {
        dir.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    })
}

/// Probes OpenGL ES through EGL, headless. Does not touch any window system.
pub fn probe() -> Result<GraphicsSupport, GraphicsProbeError> {
    if !BUILT_WITH_3D {
        return Err(GraphicsProbeError::NotBuilt);
    }
    if std::env::var("GDK_DEBUG").is_ok_and(|v| gl_disabled_by(&v)) {
        return Err(GraphicsProbeError::DisabledByUser);
    }
    // SAFETY: loads the system's libEGL.so.1 by name; its entry points are the standard
    // EGL 1.5 API that khronos-egl declares, and the library stays loaded in `egl` for as
    // long as it is used below.
    let egl = unsafe { egl::DynamicInstance::<egl::EGL1_5>::load_required() }
        .map_err(|e| GraphicsProbeError::NoEgl(e.to_string()))?;
    // SAFETY: the surfaceless platform takes no native display (EGL_DEFAULT_DISPLAY) and an
    // empty, terminated attribute list.
    let display = unsafe {
        egl.get_platform_display(
            PLATFORM_SURFACELESS_MESA,
            egl::DEFAULT_DISPLAY,
            &[egl::ATTRIB_NONE],
        )
    }
    .map_err(|e| GraphicsProbeError::NoDisplay(e.to_string()))?;
    egl.initialize(display)
        .map_err(|e| GraphicsProbeError::NoDisplay(e.to_string()))?;
    let result = context_renderer(&egl, display);
    let _ = egl.terminate(display);
    Ok(GraphicsSupport {
        renderer: result?,
        render_node: has_render_node(),
    })
}

/// Makes a GLES 2 context current without a surface and reads `GL_RENDERER`.
fn context_renderer(
    egl: &egl::DynamicInstance<egl::EGL1_5>,
    display: egl::Display,
) -> Result<String, GraphicsProbeError> {
    let no_context = |e: egl::Error| GraphicsProbeError::NoContext(e.to_string());
    egl.bind_api(egl::OPENGL_ES_API).map_err(no_context)?;
    let config = egl
        .choose_first_config(
            display,
            // No surface at all: the default would ask for window surfaces.
            &[
                egl::RENDERABLE_TYPE,
                egl::OPENGL_ES2_BIT,
                egl::SURFACE_TYPE,
                0,
                egl::NONE,
            ],
        )
        .map_err(no_context)?
        .ok_or_else(|| GraphicsProbeError::NoContext("no OpenGL ES 2 configuration".into()))?;
    let context = egl
        .create_context(
            display,
            config,
            None,
            &[egl::CONTEXT_CLIENT_VERSION, 2, egl::NONE],
        )
        .map_err(no_context)?;
    let renderer = egl
        .make_current(display, None, None, Some(context))
        .map_err(no_context)
        .and_then(|()| {
            let get_string = egl.get_proc_address("glGetString").ok_or_else(|| {
                GraphicsProbeError::NoContext("the driver has no glGetString".into())
            })?;
            // SAFETY: glGetString has the C signature `const GLubyte *glGetString(GLenum)`;
            // a context is current on this thread, and the returned string (static in the
            // driver, or null) is copied before the context goes.
            let name = unsafe {
                let get_string: extern "system" fn(u32) -> *const std::ffi::c_char =
                    std::mem::transmute(get_string);
                let p = get_string(GL_RENDERER);
                if p.is_null() {
                    None
                } else {
                    Some(std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
                }
            };
            name.ok_or_else(|| {
                GraphicsProbeError::NoContext("the driver does not name its renderer".into())
            })
        });
    let _ = egl.make_current(display, None, None, None);
    let _ = egl.destroy_context(display, context);
    renderer
}

/// Whether guests can have Vulkan through venus: the host's Vulkan device's name, or why
/// not. Starts virglrenderer in this process (run it where [`probe`] runs: in a child).
pub fn probe_vulkan() -> Result<String, VulkanProbeError> {
    if !BUILT_WITH_3D {
        return Err(VulkanProbeError::NotBuilt);
    }
    let device = vulkan_device()?;
    #[cfg(feature = "virgl")]
    match crate::devices::virtio::gpu::virgl::venus_wire_format() {
        Ok(None) => return Err(VulkanProbeError::NoVenus),
        Ok(Some(0)) => return Err(VulkanProbeError::RendererTooOld(0)),
        Ok(Some(_)) => {}
        Err(e) => return Err(VulkanProbeError::Renderer(e.to_string())),
    }
    Ok(device)
}

/// The host's best Vulkan device (a discrete GPU before an integrated one, before the CPU).
fn vulkan_device() -> Result<String, VulkanProbeError> {
    use ash::vk;
    // SAFETY: loads the system's libvulkan.so.1 by name; ash's function table matches the
    // Vulkan 1.x loader ABI, and `entry` keeps the library loaded while it is used.
    let entry =
        unsafe { ash::Entry::load() }.map_err(|e| VulkanProbeError::NoLoader(e.to_string()))?;
    let app = vk::ApplicationInfo::default().api_version(vk::make_api_version(0, 1, 1, 0));
    let info = vk::InstanceCreateInfo::default().application_info(&app);
    // SAFETY: `info` and `app` outlive the call; the instance is destroyed below.
    let instance = unsafe { entry.create_instance(&info, None) }
        .map_err(|e| VulkanProbeError::NoDevice(format!("{e:?}")))?;
    // SAFETY: `instance` is live; the handles it returns are only used while it is.
    let found = unsafe { instance.enumerate_physical_devices() }.map(|devices| {
        devices
            .into_iter()
            .map(|d| {
                // SAFETY: `d` came from this instance, which is live.
                let p = unsafe { instance.get_physical_device_properties(d) };
                let rank = match p.device_type {
                    vk::PhysicalDeviceType::DISCRETE_GPU => 0,
                    vk::PhysicalDeviceType::INTEGRATED_GPU => 1,
                    vk::PhysicalDeviceType::VIRTUAL_GPU => 2,
                    vk::PhysicalDeviceType::CPU => 4,
                    _ => 3,
                };
                let name = p
                    .device_name_as_c_str()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (rank, name)
            })
            .min()
    });
    // SAFETY: nothing created from the instance outlives it.
    unsafe { instance.destroy_instance(None) };
    match found {
        Ok(Some((_, name))) => Ok(name),
        Ok(None) => Err(VulkanProbeError::NoDevice("no device".into())),
        Err(e) => Err(VulkanProbeError::NoDevice(format!("{e:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdk_debug_lists_are_read_flag_by_flag() {
        assert!(gl_disabled_by("gl-disable"));
        assert!(gl_disabled_by("misc,gl-disable"));
        assert!(gl_disabled_by("gl-disable:events"));
        assert!(!gl_disabled_by("gl-disabled"));
        assert!(!gl_disabled_by("vulkan-disable"));
        assert!(!gl_disabled_by(""));
    }

    #[test]
    fn software_renderers_are_told_apart() {
        let llvmpipe = GraphicsSupport {
            renderer: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            render_node: false,
        };
        assert!(llvmpipe.is_software());
        let gpu = GraphicsSupport {
            renderer: "AMD Radeon RX 6600 (navi23, LLVM 15.0.6, DRM 3.49)".into(),
            render_node: true,
        };
        assert!(!gpu.is_software());
    }

    /// Mesa is installed on the test machines (install-deps.sh): the probe must find its
    /// surfaceless EGL and name a renderer.
    #[test]
    #[cfg(feature = "virgl")]
    fn mesa_renders_headless_here() {
        if std::env::var("GDK_DEBUG").is_ok_and(|v| gl_disabled_by(&v)) {
            return;
        }
        let found = probe().expect("Mesa's surfaceless EGL works on the test machines");
        assert!(!found.renderer.is_empty());
    }

    /// What the Vulkan probe says matches what this host has: without a Vulkan driver
    /// (no ICD files), that; with one, Debian 12's virglrenderer (0.10.x) reports venus wire
    /// format 0, which the probe must call too old.
    #[test]
    #[cfg(feature = "virgl")]
    fn the_vulkan_probe_names_what_this_host_lacks() {
        let _turn = crate::devices::virtio::gpu::virgl::test_turn();
        let icds = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|d| d.flatten())
            .count();
        let virgl_version = std::process::Command::new("pkg-config")
            .args(["--modversion", "virglrenderer"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let got = probe_vulkan();
        if icds == 0 {
            assert!(
                matches!(
                    got,
                    Err(VulkanProbeError::NoDevice(_) | VulkanProbeError::NoLoader(_))
                ),
                "{got:?}"
            );
        } else if virgl_version.starts_with("0.") {
            assert_eq!(got, Err(VulkanProbeError::RendererTooOld(0)));
        }
        if virgl_version.starts_with("0.10") {
            assert_eq!(
                crate::devices::virtio::gpu::virgl::venus_wire_format().unwrap(),
                Some(0),
                "virglrenderer {virgl_version}"
            );
        }
        if let Err(e) = got {
            assert!(e.to_string().ends_with('.'), "a sentence: {e}");
        }
    }
}
