//! A minimal EDID 1.4 block describing a display whose preferred mode is the scanout's
//! size, so that the guest picks that mode (and follows it after a resize). Timings use
//! reduced blanking at 60 Hz; sizes above what a detailed timing can hold (4095 pixels)
//! are clamped there, as the guest also reads the size from the display info.

#![allow(
    clippy::cast_possible_truncation,
    reason = "EDID fields are bytes and nibbles; values are clamped to fit first"
)]

/// Bytes in one EDID block.
pub const EDID_LEN: usize = 128;

/// The EDID block for a `width` x `height` display.
pub fn edid(width: u32, height: u32) -> [u8; EDID_LEN] {
    let mut e = [0u8; EDID_LEN];
    e[0..8].copy_from_slice(&[0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
    // Manufacturer "PHY" (three 5-bit letters, big-endian), product 1, serial 0.
    let id =
        ((u16::from(b'P' - b'@')) << 10) | ((u16::from(b'H' - b'@')) << 5) | u16::from(b'Y' - b'@');
    e[8..10].copy_from_slice(&id.to_be_bytes());
    e[10] = 1;
    e[16] = 1; // week
    e[17] = 36; // year: 1990 + 36
    e[18] = 1; // EDID 1.4
    e[19] = 4;
    e[20] = 0xa5; // digital input, 8 bits per colour, DisplayPort
    e[21] = 53; // 53 x 30 cm
    e[22] = 30;
    e[23] = 120; // gamma 2.2
    e[24] = 0x06; // RGB 4:4:4, preferred timing includes native format and is continuous
                  // Chromaticity: sRGB primaries.
    e[25..35].copy_from_slice(&[0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54]);
    // No established or standard timings beyond the detailed one.
    for i in 0..8 {
        e[38 + 2 * i] = 1;
        e[39 + 2 * i] = 1;
    }
    e[54..72].copy_from_slice(&detailed_timing(width, height));
    e[72..90].copy_from_slice(&text_descriptor(0xfc, b"Phyllome"));
    // Range limits: 50-75 Hz vertical, 30-160 kHz horizontal, 600 MHz pixel clock.
    let mut range = [0u8; 18];
    range[3] = 0xfd;
    range[5..10].copy_from_slice(&[50, 75, 30, 160, 60]);
    range[10] = 0x01;
    range[11..18].copy_from_slice(&[0x0a, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20]);
    e[90..108].copy_from_slice(&range);
    e[108..126].copy_from_slice(&text_descriptor(0xff, b"0"));
    e[126] = 0; // no extension blocks
    let sum = e[..127].iter().fold(0u8, |a, b| a.wrapping_add(*b));
    e[127] = 0u8.wrapping_sub(sum);
    e
}

/// A detailed timing descriptor with CVT reduced blanking at 60 Hz.
fn detailed_timing(width: u32, height: u32) -> [u8; 18] {
    let (h, v) = (width.clamp(1, 4095), height.clamp(1, 4095));
    let (hblank, vblank) = (160u32, 35u32);
    let (hfront, hsync, vfront, vsync) = (48u32, 32u32, 3u32, 5u32);
    let clock_10khz = ((h + hblank) * (v + vblank) * 60)
        .div_ceil(10_000)
        .min(0xffff);
    let mut d = [0u8; 18];
    d[0..2].copy_from_slice(&(clock_10khz as u16).to_le_bytes());
    d[2] = h as u8;
    d[3] = hblank as u8;
    d[4] = (((h >> 8) & 0xf) << 4 | ((hblank >> 8) & 0xf)) as u8;
    d[5] = v as u8;
    d[6] = vblank as u8;
    d[7] = (((v >> 8) & 0xf) << 4 | ((vblank >> 8) & 0xf)) as u8;
    d[8] = hfront as u8;
    d[9] = hsync as u8;
    d[10] = ((vfront & 0xf) << 4 | (vsync & 0xf)) as u8;
    d[11] = 0;
    // Image size in mm: 96 dpi.
    let (hmm, vmm) = ((h * 254 / 960).min(4095), (v * 254 / 960).min(4095));
    d[12] = hmm as u8;
    d[13] = vmm as u8;
    d[14] = (((hmm >> 8) & 0xf) << 4 | ((vmm >> 8) & 0xf)) as u8;
    d[17] = 0x1e; // digital separate sync, +hsync, -vsync
    d
}

/// A display descriptor holding up to 13 bytes of text (name 0xfc, serial 0xff).
fn text_descriptor(tag: u8, text: &[u8]) -> [u8; 18] {
    let mut d = [0u8; 18];
    d[3] = tag;
    let mut body = [0x20u8; 13];
    let n = text.len().min(12);
    body[..n].copy_from_slice(&text[..n]);
    body[n] = 0x0a;
    d[5..18].copy_from_slice(&body);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checksum_and_preferred_mode() {
        let e = edid(1920, 1080);
        assert_eq!(&e[0..8], &[0, 255, 255, 255, 255, 255, 255, 0]);
        assert_eq!(e.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0, "checksum");
        let d = &e[54..72];
        let h = u32::from(d[2]) | (u32::from(d[4] >> 4) << 8);
        let v = u32::from(d[5]) | (u32::from(d[7] >> 4) << 8);
        assert_eq!((h, v), (1920, 1080));
        let clock = u32::from(u16::from_le_bytes([d[0], d[1]])) * 10_000;
        let refresh = clock as f64 / f64::from((1920 + 160) * (1080 + 35));
        assert!((refresh - 60.0).abs() < 0.1, "{refresh}");
        assert!(e.windows(8).any(|w| w == b"Phyllome"));
    }

    #[test]
    fn edid_decode_accepts_it() {
        // Cross-check with a real parser (scripts/install-deps.sh installs edid-decode).
        let mut child = std::process::Command::new("edid-decode")
            .arg("--check")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("edid-decode is installed");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&edid(1280, 800))
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("1280x800"), "{text}");
    }
}
