# Die Oberfläche von Phyllome, auf Deutsch.

app-name = Phyllome
welcome-title = Phyllome

## Was das erste Fenster über diesen Computer sagt
kvm-ready = Führen Sie Ihr eigenes Betriebssystem in einem Fenster aus. Dieser Computer kann virtuelle Maschinen ausführen.
kvm-software = Hinter dem KVM dieses Computers steht keine Hardware-Virtualisierung (er ist selbst eine virtuelle Maschine): Gäste würden kriechen.
kvm-missing = Dieser Computer kann noch keine virtuellen Maschinen ausführen: Schalten Sie die Virtualisierung in den Firmware-Einstellungen ein.
kvm-no-permission = Keine Berechtigung für /dev/kvm: Treten Sie der Gruppe kvm bei und melden Sie sich neu an.

## Das Anzeigefenster
display-default-name = Virtuelle Maschine
display-window-title = { $name } – Phyllome
display-running-captured = Läuft · Strg+Alt gibt die Tastatur frei
display-running-released = Läuft · Klicken Sie auf den Bildschirm, um die Tastatur zu übernehmen
display-connecting = Verbindung zur Anzeige wird hergestellt…
display-waiting = Warten auf die Anzeige des Gastes…
display-lost = Die Anzeige ging verloren
display-lost-stopped = Die virtuelle Maschine wurde beendet, oder ihr Grafikgerät hat die Verbindung geschlossen.
display-lost-not-running = Die virtuelle Maschine läuft nicht (niemand lauscht an ihrem Anzeige-Socket).
display-reconnect = Neu verbinden
display-fullscreen = Vollbild (F11)
display-leave-fullscreen = Vollbild verlassen
display-leave-fullscreen-tooltip = Vollbild verlassen (F11)
