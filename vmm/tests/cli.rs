//! The `phyllome-vmm` binary: a guest's output on stdout and exit status 0 on power-off,
//! and a clear one-line error with a non-zero status for every kind of bad input.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::io::Write;
use std::process::{Command, Output};

fn vmm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phyllome-vmm"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// Runs the tiny guest `name` with 64 MiB and `extra` arguments.
fn run_guest(name: &str, extra: &[&str]) -> Output {
    let kernel = common::guest(name);
    let mut args = vec![
        "run",
        "--kernel",
        kernel.to_str().unwrap(),
        "--memory",
        "64",
    ];
    args.extend_from_slice(extra);
    vmm(&args)
}

/// Asserts a failure with exactly one line on stderr that contains `needle`.
fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr:?}"
    );
    assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
}

fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f
}

#[test]
fn guest_output_goes_to_stdout_and_power_off_exits_zero() {
    let out = run_guest("hello64", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("PHYLLOME-LONG-MODE-OK"));
}

#[test]
fn serial_to_a_file_and_config_file_work() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serial.log");
    let cfg = dir.path().join("vm.toml");
    let k = common::guest("hello_pvh");
    std::fs::write(
        &cfg,
        format!(
            "version = 1\nname = \"t\"\n[machine]\nmemory_mib = 64\n[boot]\nkernel = {:?}\ncmdline = \"from-config\"\n[serial]\noutput = \"file:{}\"\n",
            k.display().to_string(),
            log.display()
        ),
    )
    .unwrap();
    let out = vmm(&["run", "--config", cfg.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("PHYLLOME-PVH-OK cmdline=from-config"),
        "{text}"
    );
}

#[test]
fn reset_under_no_reboot_exits_zero() {
    let out = run_guest("reset", &["--no-reboot"]);
    assert!(out.status.success());
}

#[test]
fn triple_fault_exits_non_zero_naming_the_rip() {
    let out = run_guest("triple_fault", &["--serial", "none"]);
    assert_one_line_error(&out, "triple-faulted at RIP 0x10");
}

#[test]
fn missing_kernel_is_a_clear_error() {
    assert_one_line_error(
        &vmm(&["run", "--kernel", "/nonexistent/bzImage"]),
        "/nonexistent/bzImage",
    );
}

#[test]
fn empty_and_random_kernels_are_clear_errors() {
    let empty = temp_file(b"");
    assert_one_line_error(
        &vmm(&["run", "--kernel", empty.path().to_str().unwrap()]),
        "empty",
    );
    let noise: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let random = temp_file(&noise);
    assert_one_line_error(
        &vmm(&["run", "--kernel", random.path().to_str().unwrap()]),
        "neither a bzImage nor an ELF",
    );
}

#[test]
fn initrd_too_large_for_memory_is_a_clear_error() {
    let k = common::guest("hello64");
    let initrd = tempfile::NamedTempFile::new().unwrap();
    initrd.as_file().set_len(64 << 20).unwrap();
    let out = vmm(&[
        "run",
        "--kernel",
        k.to_str().unwrap(),
        "--memory",
        "32",
        "--initrd",
        initrd.path().to_str().unwrap(),
    ]);
    assert_one_line_error(&out, "does not fit");
}

#[test]
fn memory_and_cpu_counts_out_of_range_are_clear_errors() {
    let k = common::guest("hello64");
    let k = k.to_str().unwrap();
    assert_one_line_error(
        &vmm(&["run", "--kernel", k, "--memory", "0"]),
        "machine.memory_mib",
    );
    assert_one_line_error(
        &vmm(&["run", "--kernel", k, "--memory", "99999999999"]),
        "more than this computer has",
    );
    assert_one_line_error(&vmm(&["run", "--kernel", k, "--cpus", "0"]), "machine.cpus");
    assert_one_line_error(
        &vmm(&["run", "--kernel", k, "--cpus", "1000"]),
        "machine.cpus",
    );
}

#[test]
fn missing_kvm_device_says_how_to_fix_it() {
    let k = common::guest("hello64");
    let out = Command::new(env!("CARGO_BIN_EXE_phyllome-vmm"))
        .args(["run", "--kernel", k.to_str().unwrap(), "--memory", "64"])
        .env("PHYLLOME_KVM_DEVICE", "/nonexistent/kvm")
        .output()
        .unwrap();
    assert_one_line_error(&out, "virtualization");
}

#[test]
fn bad_config_file_names_the_field() {
    let cfg = temp_file(b"version = 1\n[machine]\ncpus = 0\n[boot]\nkernel = \"/k\"\n");
    assert_one_line_error(
        &vmm(&["run", "--config", cfg.path().to_str().unwrap()]),
        "machine.cpus",
    );
    let garbage = temp_file(b"\x00\x01 this is not toml [[[");
    assert_one_line_error(
        &vmm(&["run", "--config", garbage.path().to_str().unwrap()]),
        "not valid",
    );
}

#[test]
fn blk_backend_refuses_missing_and_locked_images_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s");
    let socket = socket.to_str().unwrap();
    assert_one_line_error(
        &vmm(&[
            "device",
            "blk",
            "--socket",
            socket,
            "--path",
            "/nonexistent/disk.img",
        ]),
        "/nonexistent/disk.img",
    );
    let image = dir.path().join("disk.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let image = image.to_str().unwrap();
    // A first backend holds the image (it waits for a frontend that never comes).
    let mut first = Command::new(env!("CARGO_BIN_EXE_phyllome-vmm"))
        .args(["device", "blk", "--socket", socket, "--path", image])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::path::Path::new(socket).exists() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let other = dir.path().join("s2");
    let out = vmm(&[
        "device",
        "blk",
        "--socket",
        other.to_str().unwrap(),
        "--path",
        image,
    ]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_one_line_error(&out, "in use by another program");
}

/// `run --net passt` with `PATH` set to `path`.
fn run_with_network(net: &str, path: &str) -> Output {
    let kernel = common::guest("hello64");
    Command::new(env!("CARGO_BIN_EXE_phyllome-vmm"))
        .args([
            "run",
            "--kernel",
            kernel.to_str().unwrap(),
            "--memory",
            "64",
        ])
        .args(["--net", net])
        .env("PATH", path)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn the_network_starts_passt_on_a_socket_pair_and_passt_ends_with_the_vm() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A stand-in that says how it was started, what its descriptor is, and stays.
    let script = dir.path().join("passt");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" > {d}/args\necho $$ > {d}/pid\n\
             fd=$(echo \"$@\" | sed 's/.*--fd \\([0-9]*\\).*/\\1/')\n\
             readlink /proc/$$/fd/$fd > {d}/fd\nexec sleep 60\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", dir.path().display());
    let out = run_with_network("passt,forward=tcp:2222:22,forward=udp:5353", &path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("PHYLLOME-LONG-MODE-OK"));
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert!(args.starts_with("-f -e -q --fd "), "{args}");
    assert!(
        args.trim_end().ends_with("-t 2222:22 -u 5353:5353"),
        "{args}"
    );
    let fd = std::fs::read_to_string(dir.path().join("fd")).unwrap();
    assert!(
        fd.starts_with("socket:["),
        "passt's descriptor is a socket: {fd}"
    );
    let pid = std::fs::read_to_string(dir.path().join("pid")).unwrap();
    let proc_dir = std::path::PathBuf::from(format!("/proc/{}", pid.trim()));
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    // Gone, or a zombie nobody reaps now that its parent is gone.
    while proc_dir.exists()
        && !std::fs::read_to_string(proc_dir.join("stat")).is_ok_and(|s| s.contains(") Z "))
    {
        assert!(std::time::Instant::now() < until, "passt outlived the VM");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn without_passt_the_vm_runs_without_a_network_and_says_how_to_get_one() {
    let empty = tempfile::tempdir().unwrap();
    let out = run_with_network("passt", empty.path().to_str().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("PHYLLOME-LONG-MODE-OK"));
    assert!(
        stderr.contains("phyllome-vmm: The VM has no network: passt is not installed")
            && stderr.contains("apt install passt"),
        "{stderr}"
    );
}

#[test]
fn bad_network_options_are_one_line_errors_that_say_what_to_write() {
    for (net, needle) in [
        ("slirp", "use passt"),
        ("passt,forward=tcp", "the host port is missing"),
        ("passt,forward=ssh", "write tcp:HOST:GUEST"),
        ("passt,mac=01:00:5e:00:00:01", "not a unicast address"),
        ("none,forward=tcp:80:80", "no network"),
    ] {
        let out = run_guest("hello64", &["--net", net]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{net}: {stderr}");
        assert!(stderr.contains(needle), "{net}: {needle:?} not in {stderr}");
    }
}
