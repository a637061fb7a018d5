//! The PC platform devices every x86 guest and firmware expects at fixed addresses: a 16550
//! UART, the i8042 with a PS/2 keyboard (or its reset line alone), the CMOS real-time
//! clock, the ACPI power-management block, fw_cfg, the firmware's flash and its boot
//! framebuffer (ramfb).

pub mod acpi_pm;
pub mod cmos;
pub mod fw_cfg;
pub mod i8042;
pub mod pflash;
pub mod port92;
pub mod ramfb;
pub mod reset_port;
pub mod serial;
