//! A network of the test's own, for the tests and the benchmark that run passt: a network
//! namespace with loopback and a veth pair whose far end is down (an address and a default
//! route through it, which passt needs as its way out), so that no packet leaves this
//! machine. Also waiting for a backend to listen on its Unix socket in that namespace.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The host end of the namespace's veth, which passt gives the guest by DHCP.
pub const HOST_ADDRESS: &str = "10.0.2.15/24";
/// The namespace's default gateway (nobody answers there): the guest's gateway, which
/// passt maps to the host's 127.0.0.1.
pub const GATEWAY: &str = "10.0.2.2";

/// Runs `f` on a thread of its own inside a new network namespace: loopback up, and a veth
/// pair (both ends here; the far one stays down, so nothing answers) with
/// [`HOST_ADDRESS`] and a default route via [`GATEWAY`]. The namespace belongs to that
/// thread alone (and to the threads and processes it starts), never to the test harness's
/// other threads. Panics (with the reason) where no namespace can be made: that needs root.
pub fn in_own_network<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare takes no pointers; CLONE_NEWNET moves only this thread.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "cannot make a network namespace (unshare: {}): passt's tests need root, \
             so that no packet leaves this machine",
            std::io::Error::last_os_error()
        );
        for args in [
            "link set lo up",
            "link add veth0 type veth peer name veth1",
            &format!("addr add {HOST_ADDRESS} dev veth0"),
            "link set veth0 up",
            &format!("route add default via {GATEWAY} dev veth0"),
        ] {
            let out = Command::new("ip")
                .args(args.split(' '))
                .output()
                .expect("ip (iproute2) runs");
            assert!(
                out.status.success(),
                "ip {args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        f()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Whether a Unix socket at `path` is listening in this thread's network namespace
/// (`/proc/thread-self/net/unix`: flag `00010000` is `__SO_ACCEPTCON`). A socket file
/// appears at bind, a moment before its listen: a client that came then would be refused.
pub fn unix_listening(path: &Path) -> bool {
    let path = path.to_string_lossy();
    std::fs::read_to_string("/proc/thread-self/net/unix")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 8 && f[3] == "00010000" && f[7] == path
        })
}

/// Waits (up to 20 s) for `child` to listen at `socket`; panics with its log when it
/// exits first or never does.
pub fn wait_for_listener(child: &mut Child, socket: &Path, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !unix_listening(socket) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before it listened on {}:\n{}",
                socket.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{what} did not listen on {} within 20 s:\n{}",
                socket.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Who gives the guest its network.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    /// `phyllome-vmm device net --passt` behind QEMU's `-netdev vhost-user`.
    Phyllome,
    /// QEMU's own virtio-net on `-netdev stream` to a passt of the test's own.
    QemuOnPasst,
}

impl Backend {
    /// The program that listens on the socket.
    pub fn program(self) -> &'static str {
        match self {
            Self::Phyllome => "phyllome-vmm device net",
            Self::QemuOnPasst => "passt",
        }
    }

    /// Starts the backend on `socket` (forwarding each `(host, guest)` TCP port), its
    /// standard error to `log`, and waits until it listens.
    pub fn start(self, socket: &Path, forwards: &[(u16, u16)], log: &Path) -> Child {
        let stderr = std::fs::File::create(log).expect("a log file in a temporary folder");
        let mut command = match self {
            Self::Phyllome => {
                let mut c = Command::new(crate::vmm_binary());
                c.args(["device", "net", "--socket"])
                    .arg(socket)
                    .arg("--passt");
                for (host, guest) in forwards {
                    c.arg("--forward").arg(format!("tcp:{host}:{guest}"));
                }
                c
            }
            Self::QemuOnPasst => {
                // As root, passt would switch to nobody, who cannot reach the socket's folder.
                // SAFETY: getuid has no preconditions.
                let uid = unsafe { libc::getuid() };
                let mut c = Command::new("passt");
                c.args(["-f", "-1", "--runas", &uid.to_string(), "-s"])
                    .arg(socket);
                for (host, guest) in forwards {
                    c.arg("-t").arg(format!("{host}:{guest}"));
                }
                c
            }
        };
        let mut child = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", self.program()));
        wait_for_listener(&mut child, socket, self.program(), log);
        child
    }

    /// QEMU (software emulation, 256 MiB, serial on standard output, under a `limit` of
    /// seconds) booting Debian's generic kernel (from `assets`) with `initrd` and `cmdline` and a
    /// virtio-net-pci card with `mac` on this backend's `socket`.
    pub fn qemu(
        self,
        assets: &crate::Assets,
        socket: &Path,
        mac: &str,
        initrd: &Path,
        cmdline: &str,
        limit: u32,
    ) -> Command {
        let mut qemu = Command::new("timeout");
        qemu.args(["-k", "10", &limit.to_string()])
            .args(["qemu-system-x86_64", "-accel", "tcg"])
            .args(["-m", "256", "-nodefaults", "-display", "none"])
            .args(["-serial", "stdio", "-no-reboot"])
            .arg("-kernel")
            .arg(assets.kernel("generic"))
            .arg("-initrd")
            .arg(initrd)
            .arg("-append")
            .arg(cmdline);
        match self {
            Self::Phyllome => {
                qemu.args([
                    "-object",
                    "memory-backend-memfd,id=mem,size=256M,share=on",
                    "-machine",
                    "pc,memory-backend=mem",
                ])
                .arg("-chardev")
                .arg(format!("socket,id=c0,path={}", socket.display()))
                .args(["-netdev", "vhost-user,id=n0,chardev=c0"])
                .arg("-device")
                .arg(format!("virtio-net-pci,netdev=n0,mac={mac},host_mtu=65520"));
            }
            Self::QemuOnPasst => {
                qemu.arg("-device")
                    .arg(format!("virtio-net-pci,netdev=n0,mac={mac}"))
                    .arg("-netdev")
                    .arg(format!(
                        "stream,id=n0,server=off,addr.type=unix,addr.path={}",
                        socket.display()
                    ));
            }
        }
        qemu
    }
}
