//! The PC platform devices every x86 guest expects at fixed ports: a 16550 UART, the i8042
//! (for its reset line), the CMOS real-time clock and the ACPI power-management block.

pub mod acpi_pm;
pub mod cmos;
pub mod fw_cfg;
pub mod i8042;
pub mod pflash;
pub mod serial;
