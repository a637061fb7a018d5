//! Architecture-specific set-up. Phyllome runs x86-64 guests on x86-64 hosts only.

pub mod x86_64;
