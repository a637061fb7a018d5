//! Facts about the computer the VMM runs on, for callers deciding what to offer
//! (the app's warnings, tests that need real hardware virtualization).

/// Whether the processor offers VT-x (`vmx`) or AMD-V (`svm`) to this kernel. Without it,
/// a `/dev/kvm` that answers is a software emulation and guests run very slowly.
pub fn has_hardware_virtualization() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| cpuinfo_has_hardware_virtualization(&s))
        .unwrap_or(false)
}

fn cpuinfo_has_hardware_virtualization(cpuinfo: &str) -> bool {
    cpuinfo.lines().filter(|l| l.starts_with("flags")).any(|l| {
        l.split_whitespace()
            .any(|flag| flag == "vmx" || flag == "svm")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_vmx_or_svm_only_as_whole_flags() {
        assert!(cpuinfo_has_hardware_virtualization(
            "processor : 0\nflags : fpu vme svm lm\n"
        ));
        assert!(cpuinfo_has_hardware_virtualization("flags\t\t: fpu vmx\n"));
        assert!(!cpuinfo_has_hardware_virtualization(
            "flags : fpu vmxfoo svmbar\n"
        ));
        assert!(!cpuinfo_has_hardware_virtualization(
            "model name : vmx svm\n"
        ));
    }
}
