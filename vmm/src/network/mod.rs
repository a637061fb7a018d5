//! The VM's network: how its definition says what network it has (`[network]`, `--net`),
//! and the user-mode backend that carries its frames (passt, in [`passt`]). The network
//! card itself is the virtio-net device (`devices::virtio::net`); this module decides what
//! is behind it.

pub mod card;
pub mod passt;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A MAC address (`52:54:00:12:34:56`), kept as text in definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// A random address in QEMU's locally administered range (52:54:00), for a new VM:
    /// stable once it is written into its definition, so the guest keeps its lease.
    pub fn random() -> Self {
        use std::io::Read;
        let mut bytes = [0u8; 3];
        let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
        if read.is_err() {
            // No secret rests on it: the clock tells a user's VMs apart well enough.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() ^ u32::try_from(d.as_secs() & 0xffff).unwrap_or(0))
                .unwrap_or(0);
            bytes.copy_from_slice(&now.to_le_bytes()[..3]);
        }
        Self([0x52, 0x54, 0x00, bytes[0], bytes[1], bytes[2]])
    }

    /// Whether a network card may have it: unicast (an even first byte) and not all zeros.
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 1 == 0 && self.0 != [0; 6]
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("'{s}' is not a MAC address; write six hex bytes, as 52:54:00:12:34:56");
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut mac {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        let mac = Self(mac);
        if !mac.is_unicast() {
            return Err(format!(
                "{mac} is not a unicast address, which a network card needs (its first byte must be even, and not all bytes zero)"
            ));
        }
        Ok(mac)
    }
}

impl TryFrom<String> for Mac {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Mac> for String {
    fn from(m: Mac) -> String {
        m.to_string()
    }
}

/// A transport protocol a port is forwarded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A host port whose connections (or datagrams) go to a port of the guest: `tcp:2222:22`
/// makes the host's port 2222 reach the guest's SSH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Forward {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The port on the host (listening on all its addresses).
    pub host: u16,
    /// The port in the guest.
    pub guest: u16,
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        write!(f, "{p}:{}:{}", self.host, self.guest)
    }
}

impl FromStr for Forward {
    type Err = String;
    /// `tcp:HOST:GUEST`, `udp:HOST:GUEST`, or `tcp:PORT` for the same port on both sides.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("'{s}' is not a port forward: {why}; write tcp:HOST:GUEST or udp:HOST:GUEST, as tcp:2222:22")
        };
        let mut parts = s.split(':');
        let protocol = match parts.next() {
            Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            _ => return Err(bad("it must start with tcp or udp")),
        };
        let port = |p: Option<&str>| -> Result<Option<u16>, String> {
            match p {
                None => Ok(None),
                Some(p) => match p.parse::<u16>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(bad(&format!("'{p}' is not a port from 1 to 65535"))),
                },
            }
        };
        let host = port(parts.next())?.ok_or_else(|| bad("the host port is missing"))?;
        let guest = port(parts.next())?.unwrap_or(host);
        if parts.next().is_some() {
            return Err(bad("it has too many parts"));
        }
        Ok(Self {
            protocol,
            host,
            guest,
        })
    }
}

impl TryFrom<String> for Forward {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Forward> for String {
    fn from(f: Forward) -> String {
        f.to_string()
    }
}

/// What is behind the VM's network card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    /// No network card.
    #[default]
    None,
    /// User-mode networking through passt: the guest reaches what the host reaches, with no
    /// privileges and no setup; the host's 127.0.0.1 is the guest's gateway address.
    Passt,
}

/// The `[network]` table of a definition.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The backend, or none for no network card.
    #[serde(default)]
    pub mode: NetMode,
    /// Host ports forwarded into the guest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward: Vec<Forward>,
    /// The card's address; a fixed default when absent (the app writes a random one per VM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
}

impl NetworkConfig {
    /// Whether the VM has no network card and nothing else is set (left out of files).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The first problem, as (field, reason). Forwards of a VM whose network is off are
    /// kept (for when it is turned on again), not a problem.
    pub fn problem(&self) -> Option<(String, String)> {
        let mut seen = std::collections::HashSet::new();
        for (i, f) in self.forward.iter().enumerate() {
            if !seen.insert((f.protocol, f.host)) {
                return Some((
                    format!("network.forward[{i}]"),
                    format!(
                        "the host port of {f} is forwarded twice; each host port can lead to one guest port"
                    ),
                ));
            }
        }
        None
    }
}

impl FromStr for NetworkConfig {
    type Err = String;
    /// `none`, or `passt[,forward=tcp:H:G]...` (the command line's `--net`).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut words = s.split(',');
        let mode = match words.next() {
            Some("none") => NetMode::None,
            Some("passt") => NetMode::Passt,
            _ => {
                return Err(format!(
                    "'{s}' is not a network; use passt (user-mode networking, optionally passt,forward=tcp:2222:22) or none"
                ))
            }
        };
        let mut config = Self {
            mode,
            ..Self::default()
        };
        for word in words {
            if let Some(f) = word.strip_prefix("forward=") {
                config.forward.push(f.parse()?);
            } else if let Some(m) = word.strip_prefix("mac=") {
                config.mac = Some(m.parse()?);
            } else {
                return Err(format!(
                    "'{word}' is not a network option; use forward=tcp:HOST:GUEST or mac=52:54:00:..."
                ));
            }
        }
        if config.mode == NetMode::None && !config.forward.is_empty() {
            return Err(
                "ports are forwarded but the VM has no network; use passt,forward=...".into(),
            );
        }
        if let Some((_, why)) = config.problem() {
            return Err(why);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn macs_parse_print_and_refuse_multicast_and_bad_text() {
        let m: Mac = "52:54:00:AB:cd:01".parse().unwrap();
        assert_eq!(m.0, [0x52, 0x54, 0, 0xab, 0xcd, 1]);
        assert_eq!(m.to_string(), "52:54:00:ab:cd:01");
        for bad in [
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:01:02",
            "52-54-00-ab-cd-01",
            "5:54:00:ab:cd:01",
        ] {
            assert!(
                bad.parse::<Mac>().unwrap_err().contains("six hex bytes"),
                "{bad}"
            );
        }
        assert!("01:00:5e:00:00:01"
            .parse::<Mac>()
            .unwrap_err()
            .contains("not a unicast"));
        assert!("00:00:00:00:00:00".parse::<Mac>().is_err());
        let r = Mac::random();
        assert!(r.is_unicast());
        assert_eq!(r.0[..3], [0x52, 0x54, 0]);
    }

    #[test]
    fn forwards_parse_and_mistakes_say_what_to_write() {
        let f: Forward = "tcp:2222:22".parse().unwrap();
        assert_eq!(
            f,
            Forward {
                protocol: Protocol::Tcp,
                host: 2222,
                guest: 22
            }
        );
        assert_eq!(f.to_string(), "tcp:2222:22");
        let f: Forward = "udp:5353".parse().unwrap();
        assert_eq!((f.protocol, f.host, f.guest), (Protocol::Udp, 5353, 5353));
        for bad in [
            "sctp:1:2",
            "tcp:",
            "tcp:0:22",
            "tcp:70000:22",
            "tcp:1:2:3",
            "2222:22",
        ] {
            assert!(
                bad.parse::<Forward>()
                    .unwrap_err()
                    .ends_with("write tcp:HOST:GUEST or udp:HOST:GUEST, as tcp:2222:22"),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_net_option_reads_mode_forwards_and_mac() {
        let n: NetworkConfig = "passt,forward=tcp:2222:22,forward=udp:53:53,mac=52:54:00:00:00:07"
            .parse()
            .unwrap();
        assert_eq!(n.mode, NetMode::Passt);
        assert_eq!(n.forward.len(), 2);
        assert_eq!(n.mac.unwrap().0[5], 7);
        assert_eq!(
            "none".parse::<NetworkConfig>().unwrap(),
            NetworkConfig::default()
        );
        assert!("slirp"
            .parse::<NetworkConfig>()
            .unwrap_err()
            .contains("use passt"));
        assert!("passt,port=22"
            .parse::<NetworkConfig>()
            .unwrap_err()
            .contains("not a network option"));
        assert!("passt,forward=tcp:80:80,forward=tcp:80:8080"
            .parse::<NetworkConfig>()
            .unwrap_err()
            .contains("forwarded twice"));
        assert!("none,forward=tcp:80:80"
            .parse::<NetworkConfig>()
            .unwrap_err()
            .contains("no network"));
    }

    #[test]
    fn the_network_table_round_trips_through_toml() {
        let n = NetworkConfig {
            mode: NetMode::Passt,
            forward: vec!["tcp:2222:22".parse().unwrap()],
            mac: Some("52:54:00:01:02:03".parse().unwrap()),
        };
        let text = toml::to_string(&n).unwrap();
        assert!(text.contains("mode = \"passt\""), "{text}");
        assert!(text.contains("forward = [\"tcp:2222:22\"]"), "{text}");
        assert!(text.contains("mac = \"52:54:00:01:02:03\""), "{text}");
        assert_eq!(toml::from_str::<NetworkConfig>(&text).unwrap(), n);
        let e = toml::from_str::<NetworkConfig>("mode = \"passt\"\nforward = [\"tcp:x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a port forward"), "{e}");
    }
}
