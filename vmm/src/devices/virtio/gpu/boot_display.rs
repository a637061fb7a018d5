//! Which picture scanout 0 shows when a VM has two displays: the firmware's boot display
//! (ramfb: firmware, GRUB's graphical menu, Linux's efifb and whatever draws on it) and the
//! virtio-gpu scanout (the firmware's own virtio-gpu driver, then the OS's). The firmware
//! draws its console on both; GRUB's gfxterm and efifb draw only on ramfb (the firmware's
//! virtio-gpu driver has no linear framebuffer for them); a desktop only on the virtio-gpu.
//! So the one that changes is the one the user is looking at: ramfb takes the screen each
//! time it changes; the virtio-gpu takes it back with its first flush after ramfb has been
//! still for [`QUIET`], shown whole. (A still ramfb keeps the screen while the virtio-gpu
//! draws nothing new: GRUB's menu waiting for a key must not give way to the firmware's
//! older picture on the virtio-gpu.)

use std::time::{Duration, Instant};

/// How long ramfb must be still before the virtio-gpu scanout shows again: longer than a
/// boot menu's countdown tick, short enough not to hide a desktop that took over.
pub const QUIET: Duration = Duration::from_millis(1500);

/// What a virtio-gpu flush of scanout 0 may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuTurn {
    /// Show its damage: the virtio-gpu has the screen.
    Damage,
    /// Show the whole scanout: the virtio-gpu takes the screen back from ramfb.
    Whole,
    /// Nothing: ramfb has the screen.
    Hidden,
}

/// The arbiter: when ramfb last changed, while it has the screen.
#[derive(Debug, Default)]
pub struct BootDisplay {
    changed: Option<Instant>,
}

impl BootDisplay {
    /// Whether ramfb has the screen.
    pub fn on_screen(&self) -> bool {
        self.changed.is_some()
    }

    /// ramfb changed (and is shown).
    pub fn ramfb_changed(&mut self, now: Instant) {
        self.changed = Some(now);
    }

    /// A virtio-gpu flush of scanout 0 at `now`.
    pub fn gpu_flush(&mut self, now: Instant) -> GpuTurn {
        match self.changed {
            None => GpuTurn::Damage,
            Some(at) if now.saturating_duration_since(at) >= QUIET => {
                self.changed = None;
                GpuTurn::Whole
            }
            Some(_) => GpuTurn::Hidden,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_display_that_changes_is_shown_and_ramfb_gives_way_when_still() {
        let t0 = Instant::now();
        let mut b = BootDisplay::default();
        // No ramfb activity: the virtio-gpu shows its damage.
        assert_eq!(b.gpu_flush(t0), GpuTurn::Damage);
        // ramfb draws (GRUB's menu): the virtio-gpu's flushes are hidden meanwhile.
        b.ramfb_changed(t0);
        assert!(b.on_screen());
        assert_eq!(
            b.gpu_flush(t0 + Duration::from_millis(100)),
            GpuTurn::Hidden
        );
        b.ramfb_changed(t0 + Duration::from_secs(1));
        assert_eq!(
            b.gpu_flush(t0 + Duration::from_millis(2000)),
            GpuTurn::Hidden,
            "still within QUIET of the last change"
        );
        // Still long enough: the next flush takes the screen back, whole, then damage.
        let later = t0 + Duration::from_secs(1) + QUIET;
        assert_eq!(b.gpu_flush(later), GpuTurn::Whole);
        assert!(!b.on_screen());
        assert_eq!(b.gpu_flush(later), GpuTurn::Damage);
        // A still ramfb keeps the screen for as long as the virtio-gpu draws nothing.
        b.ramfb_changed(later);
        assert!(b.on_screen());
        let much_later = later + QUIET * 10;
        assert!(b.on_screen());
        assert_eq!(b.gpu_flush(much_later), GpuTurn::Whole);
    }
}
