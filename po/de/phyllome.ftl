# Die Oberfläche von Phyllome, auf Deutsch.

app-name = Phyllome

## Was das erste Fenster über diesen Computer sagt
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
display-gpu-stopped = Das Grafikgerät wurde beendet
display-gpu-stopped-detail = Die virtuelle Maschine läuft weiter, aber ohne Anzeige. Starten Sie sie neu, um die Anzeige zurückzubekommen; ihre Festplatten sind nicht betroffen.
display-restart = Neu starten
display-fullscreen = Vollbild (F11)
display-leave-fullscreen = Vollbild verlassen
display-leave-fullscreen-tooltip = Vollbild verlassen (F11)

## Die Bibliothek
library-new = Neue virtuelle Maschine (Strg+N)
library-empty-title = Noch keine virtuellen Maschinen
library-empty-description = Installieren Sie ein Betriebssystem von seinem Installationsabbild: Es läuft in einem Fenster, mit eigener Festplatte.
library-empty-create = Virtuelle Maschine erstellen
library-unavailable = Die Bibliothek kann nicht geöffnet werden
library-broken = Beschädigte Definition in „{ $folder }“
library-still-running = Phyllome lässt Ihre virtuellen Maschinen weiterlaufen; Sie finden es im Benachrichtigungsfeld.
os-unknown = Unbekanntes System
state-off = Aus
state-starting = Startet…
state-running = Läuft
state-paused = Angehalten
state-shutting-down = Fährt herunter…
state-no-network = kein Netzwerk
action-start = Starten
action-open-display = Bildschirm zeigen
action-pause = Anhalten
action-resume = Fortsetzen
action-shut-down = Herunterfahren
action-force-off = Ausschalten erzwingen
action-settings = Einstellungen
action-delete = Löschen…
action-more = Weitere Aktionen
vm-not-running = { $name } läuft nicht.
vm-broken-cannot-start = Diese Definition ist nicht lesbar und kann daher nicht starten; reparieren oder löschen Sie sie.
vm-start-failed = { $name } kann nicht starten: { $reason }
vm-error = { $name }: { $reason }
vm-graphics-stopped = { $name }: Das Grafikgerät wurde beendet. Die VM läuft weiter; starten Sie sie in ihrem Fenster neu, um die Anzeige zurückzubekommen.
vm-network-down = { $name }: { $reason }
vm-stopped-unexpectedly = { $name } hat unerwartet angehalten: { $reason }
vm-3d-later = 3D-Beschleunigung ist in dieser Version noch nicht enthalten: Diese virtuelle Maschine läuft vorerst mit 2D-Grafik.
stop-triple-fault = das Gastsystem ist abgestürzt (Triple Fault)
stop-internal = der Monitor der virtuellen Maschine ist gescheitert ({ $detail })
delete-title = { $name } löschen?
delete-body = Ihre Definition wird entfernt. Ihre Festplatten können bleiben, in einem Ordner neben der Bibliothek, oder mit ihr gelöscht werden.
delete-body-broken = Die beschädigte Definition wird entfernt. Ihre Festplatten können bleiben, in einem Ordner neben der Bibliothek, oder mit ihr gelöscht werden.
delete-keep-disks = Löschen, Festplatten behalten
delete-with-disks = Mit Festplatten löschen
quit-running-title = Virtuelle Maschinen laufen
quit-running-body = { $count ->
    [one] Eine virtuelle Maschine läuft. Wenn Sie Phyllome schließen, wird sie beendet.
   *[other] { $count } virtuelle Maschinen laufen. Wenn Sie Phyllome schließen, werden sie beendet.
}
quit-keep-open = Weiterlaufen lassen
quit-shut-down = Herunterfahren und beenden
quit-force-off = Ausschalten erzwingen und beenden

## Das Benachrichtigungsfeld
tray-show-window = Phyllome zeigen
tray-hide-window = Phyllome verbergen
tray-quit = Beenden
tray-running-count = { $count ->
    [0] Keine virtuelle Maschine läuft
    [one] Eine virtuelle Maschine läuft
   *[other] { $count } virtuelle Maschinen laufen
}

## Der Installationsassistent
wizard-title = Neue virtuelle Maschine
wizard-step = Schritt { $step } von 4: { $what }
wizard-page-source = Installationsprogramm
wizard-page-resources = Ressourcen
wizard-page-graphics = Grafik
wizard-page-summary = Zusammenfassung
wizard-cancel = Abbrechen
wizard-back = Zurück
wizard-next = Weiter
wizard-create = Erstellen
wizard-open = Öffnen
wizard-source-title = Installationsprogramm wählen
wizard-source-description = Wählen Sie das Installationsabbild (.iso) des zu installierenden Systems, oder ziehen Sie es auf dieses Fenster.
wizard-choose-image = Installationsabbild wählen…
wizard-iso-filter = Installationsabbilder
wizard-all-files = Alle Dateien
wizard-image-group = Installationsabbild
wizard-no-image = Kein Abbild gewählt
wizard-no-image-hint = Jedes Installationsprogramm, das auf einem PC mit UEFI startet: Debian, Ubuntu, Fedora, Arch Linux, openSUSE und andere.
wizard-reading = Abbild wird gelesen…
wizard-boots-firmware = startet mit UEFI-Firmware
wizard-windows-needs-disk = { $os } kann noch nicht installiert werden: Sein Installationsprogramm braucht eine AHCI- (SATA) oder NVMe-Festplatte, und die Festplatten von Phyllome sind virtio-Festplatten, für die Windows keinen eigenen Treiber hat.
wizard-no-firmware = UEFI-Firmware ist nicht installiert, und Installationsprogramme brauchen sie zum Starten. Installieren Sie sie (unter Debian: apt install ovmf, das sie unter { $path } ablegt) und wählen Sie das Abbild dann erneut.
wizard-image-unusable = Diese Datei kann nicht verwendet werden
wizard-not-iso = „{ $file }“ ist kein Installationsabbild: Es hat kein ISO-9660-Volume. Wählen Sie die heruntergeladene .iso-Datei.
wizard-iso-unreadable = { $file } kann nicht gelesen werden ({ $reason }). Prüfen Sie, ob die Datei noch da ist und Sie sie lesen dürfen.
wizard-iso-damaged = Das Abbild ist beschädigt ({ $reason }). Laden Sie es erneut herunter.
wizard-advanced = Erweitert: einen Kernel starten
wizard-advanced-description = Ein Linux-Kernel, eine optionale Initrd und eine Befehlszeile statt eines Installationsabbilds.
wizard-kernel = Kernel
wizard-initrd = Initrd (optional)
wizard-cmdline = Befehlszeile
wizard-kernel-missing = { $file } existiert nicht; geben Sie den vollständigen Pfad der Datei an.
wizard-default-name = Virtuelle Maschine
wizard-resources-title = Ressourcen
wizard-resources-description = Vorgeschlagen für dieses System und diesen Computer. Die Festplatte belegt erst Platz, wenn das System sie füllt.
wizard-name = Name
wizard-name-empty = Geben Sie der virtuellen Maschine einen Namen.
wizard-name-taken = Eine virtuelle Maschine namens „{ $name }“ gibt es schon; wählen Sie einen anderen Namen.
wizard-cpus = Prozessoren
wizard-cpus-host = Dieser Computer hat { $count }
wizard-memory = Arbeitsspeicher
wizard-memory-unit = MiB
wizard-disk = Festplattengröße
wizard-disk-unit = GiB, höchstens (wächst bei Bedarf)
wizard-disk-format = Festplattenformat
wizard-format-qcow2 = qcow2 (wächst bei Bedarf)
wizard-format-raw = roh (am einfachsten, dünn belegt)
wizard-graphics-title = Grafik
wizard-graphics-description = Mit 3D-Beschleunigung zeichnet das System mit dem OpenGL dieses Computers.
wizard-3d = 3D-Beschleunigung
wizard-3d-probing = Es wird geprüft, was dieser Computer zeichnen kann…
wizard-3d-available = Verfügbar, gezeichnet von { $renderer }
wizard-3d-available-software = Verfügbar, auf dem Prozessor gezeichnet von { $renderer }: Das funktioniert, langsamer als mit einer Grafikkarte
wizard-vulkan = Vulkan
wizard-summary-title = Zusammenfassung
wizard-summary-description = Erstellen legt die Festplatte an, speichert die virtuelle Maschine und startet das Installationsprogramm.
wizard-creating = Virtuelle Maschine wird erstellt
wizard-step-vars = Einstellungen der Firmware werden vorbereitet…
wizard-step-disk = Festplatte wird angelegt…
wizard-create-failed = Die virtuelle Maschine wurde nicht erstellt: { $reason }
summary-os = System
summary-installer = Installationsabbild (schreibgeschützt eingebunden)
summary-kernel = Kernel
summary-name = Name
summary-cpus = Prozessoren
summary-memory = Arbeitsspeicher
summary-disk = Festplatte
summary-disk-qcow2 = { $gib } GiB, qcow2
summary-disk-raw = { $gib } GiB, roh
summary-graphics = Grafik
summary-3d-on = 3D-Beschleunigung
summary-3d-on-vulkan = 3D-Beschleunigung, mit OpenGL und Vulkan
summary-3d-off = 2D
summary-network = Netzwerk
summary-network-on = Netzwerk im Benutzermodus (passt): Die VM erreicht, was dieser Computer erreicht
summary-network-off = Keines
size-mib = { $mib } MiB

## Was die 3D-Prüfung gefunden hat
graphics-disabled = OpenGL ist in dieser Sitzung ausgeschaltet (GDK_DEBUG=gl-disable), daher ist die 3D-Beschleunigung aus.
graphics-not-built = Diese Version von Phyllome hat keinen 3D-Renderer (ohne virglrenderer gebaut), daher ist die 3D-Beschleunigung aus.
graphics-no-egl = Dieser Computer hat keine OpenGL-Bibliothek (libEGL): Installieren Sie Mesa für 3D-Beschleunigung. ({ $detail })
graphics-no-display = OpenGL kann hier ohne Bildschirm nicht zeichnen: Installieren Sie Mesas EGL-Treiber für 3D-Beschleunigung. ({ $detail })
graphics-no-context = Der OpenGL-Treiber kann keinen Zeichenkontext anlegen, daher ist die 3D-Beschleunigung aus. ({ $detail })
graphics-probe-crashed = Der OpenGL-Treiber ist bei der Prüfung abgestürzt ({ $how }), daher ist die 3D-Beschleunigung aus.
graphics-probe-failed = OpenGL konnte nicht geprüft werden, daher ist die 3D-Beschleunigung aus.
graphics-vulkan-available = Gäste bekommen auch Vulkan (über venus), gezeichnet von { $device }
graphics-vulkan-no-loader = Gäste bekommen OpenGL, aber kein Vulkan: Dieser Computer hat keine Vulkan-Bibliothek (libvulkan1). ({ $detail })
graphics-vulkan-no-device = Gäste bekommen OpenGL, aber kein Vulkan: Dieser Computer hat keinen Vulkan-Treiber; installieren Sie den Ihrer Grafikkarte oder den von Mesa (mesa-vulkan-drivers). ({ $detail })
graphics-vulkan-no-venus = Gäste bekommen OpenGL, aber kein Vulkan: Der virglrenderer dieses Computers wurde ohne venus gebaut.
graphics-vulkan-too-old = Gäste bekommen OpenGL, aber kein Vulkan: Der virglrenderer dieses Computers ist zu alt (venus braucht Version 1.0 oder neuer).
graphics-vulkan-failed = Gäste bekommen OpenGL, aber kein Vulkan: Der 3D-Renderer konnte nicht starten. ({ $detail })
graphics-vulkan-unknown = Gäste bekommen OpenGL, aber kein Vulkan: Vulkan konnte nicht geprüft werden.

## Fehler
error-too-many-cpus = Dieser Computer hat { $host } Prozessoren; geben Sie der virtuellen Maschine höchstens { $host }.
error-no-cpu = Geben Sie der virtuellen Maschine mindestens einen Prozessor.
error-too-much-memory = Dieser Computer hat { $host } MiB Arbeitsspeicher; geben Sie der virtuellen Maschine höchstens { $max } MiB, damit dem Desktop genug bleibt.
error-too-little-memory = { $min } MiB Arbeitsspeicher sind das Mindeste, womit ein Installationsprogramm läuft.
error-disk-too-large = Die Festplatte könnte auf { $want } GiB wachsen, dort sind aber nur { $free } GiB frei; wählen Sie eine kleinere Festplatte oder schaffen Sie Platz.
error-disk-too-small = Eine Festplatte mit weniger als { $min } GiB kann kein Betriebssystem aufnehmen.
error-store-io = { $path } kann nicht gelesen oder geschrieben werden ({ $reason }). Prüfen Sie, ob der Datenträger voll ist und Sie dort schreiben dürfen.
error-store-broken = Die Definition { $path } ist nicht lesbar ({ $reason }); sie wurde unverändert gelassen. Reparieren oder entfernen Sie sie zuerst.
error-store-gone = Der Ordner dieser virtuellen Maschine, { $path }, ist verschwunden; er wurde außerhalb von Phyllome entfernt.

## Die Einstellungen einer virtuellen Maschine
settings-title = Einstellungen von { $name }
settings-general = Allgemein
settings-next-start = Änderungen gelten ab dem nächsten Start der virtuellen Maschine.
settings-network = Netzwerk
settings-network-switch = Netzwerkkarte
settings-network-passt = Netzwerk im Benutzermodus über passt: Die VM erreicht, was dieser Computer erreicht, ohne Einrichtung.
settings-network-no-passt = passt ist nicht installiert, daher würde die VM ohne Netzwerk starten. Installieren Sie das Paket passt (unter Debian und Ubuntu: apt install passt).
settings-network-mac = Hardware-Adresse
settings-network-forwards = Weitergeleitete Ports
settings-network-forwards-description = Ports dieses Computers, die in die VM führen, als tcp:HOST:GAST oder udp:HOST:GAST, durch Kommas getrennt; tcp:2222:22 leitet Port 2222 dieses Computers an SSH in der VM.
settings-network-forwards-entry = Ports
settings-network-forwards-invalid = Die Ports wurden nicht geändert: { $reason }
settings-sound = Ton
settings-sound-switch = Soundkarte
settings-sound-description = Spielt über den Ton dieses Computers (PipeWire) ab und folgt seinen Standard-Lautsprechern und seinem Standard-Mikrofon.
settings-microphone = Mikrofon
settings-microphone-description = Lässt die VM das Mikrofon dieses Computers hören. Ausgeschaltet nimmt die VM Stille auf.
display-microphone-on = Die VM hört Ihr Mikrofon: Klicken zum Beenden
display-microphone-off = Die VM hört Ihr Mikrofon nicht: Klicken zum Erlauben
settings-disks = Festplatten
settings-add-disk = Festplatte hinzufügen…
settings-remove-disk = Diese Festplatte lösen (die Datei bleibt)
settings-eject = Auswerfen
settings-disk-readonly = { $path } (schreibgeschützt)
settings-cdroms = CD/DVD-Laufwerke
settings-add-cdrom = Laufwerk hinzufügen
settings-cdrom-drive = Laufwerk { $number }
settings-cdrom-drive-holds = Laufwerk { $number }: { $path }
settings-cdrom-empty = Kein Datenträger
settings-cdrom-insert = Datenträger einlegen …
settings-cdrom-live = Datenträger wechseln sofort, wie in einem echten Laufwerk; ein hinzugefügtes Laufwerk erscheint beim nächsten Start.
vm-disc-ejected = Der Datenträger in Laufwerk { $number } von { $name } wurde entnommen.
vm-disc-locked = { $name } hält den Datenträger in Laufwerk { $number } gesperrt, solange es ihn benutzt. Werfen Sie ihn in der virtuellen Maschine aus oder erzwingen Sie den Auswurf.
vm-disc-force = Auswurf erzwingen
settings-graphics = Grafik
settings-boot = Start
settings-boot-description = Was die virtuelle Maschine startet: ein Linux-Kernel, seine Initrd und seine Befehlszeile.
settings-kernel-needed = Die virtuelle Maschine braucht einen Kernel, um zu starten.
settings-invalid = Diese Änderung wurde nicht gespeichert: { $reason }
settings-saved = Gespeichert.
settings-boot-firmware = UEFI-Firmware: { $path }
settings-boot-vars = Ihre Einstellungen und Starteinträge liegen in { $path }
settings-boot-kernel = Kernel, direkt gestartet
