//! A VM's network card with passt behind it, kept across the guest's reboots: the
//! virtio-net device, the plug its frames go through, and the passt that serves it. When
//! passt cannot start or ends, the card's link is down and the VM runs on; a reboot of the
//! guest starts a new passt.

use super::passt::{Passt, PasstError, PasstLink, PasstOptions};
use super::NetworkConfig;
use crate::devices::bus::lock;
use crate::devices::virtio::net::{FrameBackend, Net, NetConfig, NetError, NetHost, DEFAULT_MAC};
use std::io;
use std::sync::{Arc, Mutex};

/// Told, as a sentence, each time the network goes down.
pub type Notice = Arc<dyn Fn(String) + Send + Sync>;

/// Where the card's transmitted frames go: the current passt's link, or nowhere while
/// none is connected (each frame then fails alone).
#[derive(Debug, Clone, Default)]
pub struct Plug(Arc<Mutex<Option<PasstLink>>>);

impl FrameBackend for Plug {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        match lock(&self.0).as_mut() {
            Some(link) => link.send(frame),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// What is behind a card: the plug, the passt, and the card's host side.
pub struct NetworkCard {
    host: NetHost,
    plug: Plug,
    passt: Mutex<Option<Passt>>,
    options: PasstOptions,
    notice: Notice,
}

impl std::fmt::Debug for NetworkCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkCard")
            .field("host", &self.host)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl NetworkCard {
    /// The card `config` describes (the device, to serve), with passt started behind it
    /// (link down when passt could not start: the sentence saying why comes back too, to
    /// tell the user once the VM runs).
    pub fn open(
        config: &NetworkConfig,
        options: PasstOptions,
        notice: Notice,
    ) -> Result<(Self, Net, Option<String>), NetError> {
        let plug = Plug::default();
        let net_config = NetConfig {
            mac: config.mac.map_or(DEFAULT_MAC, |m| m.0),
            ..NetConfig::default()
        };
        let (net, host) = Net::new(net_config, Box::new(plug.clone()))?;
        let card = Self {
            host,
            plug,
            passt: Mutex::new(None),
            options,
            notice,
        };
        let failure = card.connect().err().map(|e| down_sentence(&e));
        Ok((card, net, failure))
    }

    /// The card's host side (link state, counters).
    pub fn host(&self) -> &NetHost {
        &self.host
    }

    /// Starts a new passt when the last one is gone (the guest rebooted); says why when it
    /// cannot.
    pub fn revive(&self) {
        if self.host.link_up() {
            return;
        }
        if let Err(e) = self.connect() {
            (self.notice)(down_sentence(&e));
        }
    }

    /// Starts passt and plugs it in, replacing the one before.
    fn connect(&self) -> Result<(), PasstError> {
        self.host.set_link(false);
        *lock(&self.plug.0) = None;
        // The old one goes first, so that its reader's end does not touch the new link.
        lock(&self.passt).take();
        let notice = self.notice.clone();
        let (passt, link) = Passt::start(
            &self.options,
            self.host.clone(),
            Box::new(move |why| notice(why)),
        )?;
        *lock(&self.plug.0) = Some(link);
        *lock(&self.passt) = Some(passt);
        self.host.set_link(true);
        Ok(())
    }
}

fn down_sentence(e: &PasstError) -> String {
    format!("The VM has no network: {e}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::time::Duration;

    fn notices() -> (Notice, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        (
            Arc::new(move |s| {
                let _ = lock(&tx).send(s);
            }),
            rx,
        )
    }

    #[test]
    fn without_passt_the_card_is_there_with_its_link_down_and_the_reason_is_kept() {
        let (notice, rx) = notices();
        let options = PasstOptions {
            program: Some(PathBuf::from("/nonexistent/passt")),
            ..PasstOptions::default()
        };
        let config: NetworkConfig = "passt,mac=52:54:00:aa:bb:cc".parse().unwrap();
        let (card, net, failure) = NetworkCard::open(&config, options, notice).unwrap();
        let failure = failure.unwrap();
        assert!(
            failure.starts_with("The VM has no network: passt is not installed"),
            "{failure}"
        );
        assert!(!card.host().link_up());
        let c = crate::devices::virtio::DeviceCore::config(&net);
        assert_eq!(c[..6], [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]);
        assert_eq!(
            u16::from_le_bytes([c[6], c[7]]),
            0,
            "link down in the status"
        );
        // A reboot tries again and says so again.
        card.revive();
        assert!(rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .contains("not installed"));
        let mut plug = card.plug.clone();
        assert_eq!(
            plug.send(&[0u8; 60]).unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
    }

    #[test]
    fn a_passt_that_ends_is_replaced_on_revive_and_the_link_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("starts");
        let program = dir.path().join("passt");
        // Ends at once the first time, stays the second.
        std::fs::write(
            &program,
            format!(
                "#!/bin/sh\necho x >> {c}\n[ $(wc -l < {c}) -ge 2 ] && exec sleep 60\necho 'gone' >&2\nexit 3\n",
                c = count.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (notice, rx) = notices();
        let options = PasstOptions {
            program: Some(program),
            ..PasstOptions::default()
        };
        let (card, _net, failure) =
            NetworkCard::open(&"passt".parse().unwrap(), options, notice).unwrap();
        assert!(failure.is_none());
        let why = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            why.contains("passt ended (exit status: 3), saying \"gone\""),
            "{why}"
        );
        assert!(!card.host().link_up());
        card.revive();
        assert!(card.host().link_up());
        // The second one says it started as it starts; give it a moment.
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&count).unwrap().lines().count() < 2 {
            assert!(std::time::Instant::now() < until, "no second passt started");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    }
}
