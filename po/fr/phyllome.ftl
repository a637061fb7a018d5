# L'interface de Phyllome, en français.

app-name = Phyllome

## Ce que la première fenêtre dit de cet ordinateur
kvm-software = Le KVM de cet ordinateur n'a pas de virtualisation matérielle derrière lui (c'est lui-même une machine virtuelle) : les invités se traîneraient.
kvm-missing = Cet ordinateur ne peut pas encore exécuter de machines virtuelles : activez la virtualisation dans les réglages de son micrologiciel.
kvm-no-permission = Pas de permission pour utiliser /dev/kvm : ajoutez-vous au groupe kvm, puis reconnectez-vous.

## La fenêtre d'affichage
display-default-name = Machine virtuelle
display-window-title = { $name } – Phyllome
display-running-captured = En marche · Ctrl+Alt libère le clavier
display-running-released = En marche · cliquez sur l'écran pour capturer le clavier
display-connecting = Connexion à l'affichage…
display-waiting = En attente de l'affichage de l'invité…
display-lost = L'affichage a été perdu
display-lost-stopped = La machine virtuelle s'est arrêtée, ou son périphérique graphique a fermé la connexion.
display-lost-not-running = La machine virtuelle ne tourne pas (rien n'écoute sur son socket d'affichage).
display-reconnect = Se reconnecter
display-gpu-stopped = Le périphérique graphique s’est arrêté
display-gpu-stopped-detail = La machine virtuelle tourne toujours, mais sans affichage. Redémarrez-la pour retrouver l’affichage ; ses disques ne sont pas touchés.
display-restart = Redémarrer
display-fullscreen = Plein écran (F11)
display-leave-fullscreen = Quitter le plein écran
display-leave-fullscreen-tooltip = Quitter le plein écran (F11)

## La bibliothèque
library-new = Nouvelle machine virtuelle (Ctrl+N)
library-empty-title = Aucune machine virtuelle
library-empty-description = Installez un système d'exploitation à partir de son image d'installation : il tourne dans une fenêtre, avec son propre disque.
library-empty-create = Créer une machine virtuelle
library-unavailable = La bibliothèque ne peut pas être ouverte
library-broken = Définition endommagée dans « { $folder } »
library-still-running = Phyllome laisse tourner vos machines virtuelles ; retrouvez-le dans la zone de notification.
os-unknown = Système inconnu
state-off = Éteinte
state-starting = Démarrage…
state-running = En marche
state-paused = En pause
state-shutting-down = Extinction…
state-no-network = pas de réseau
action-start = Démarrer
action-open-display = Afficher l'écran
action-pause = Mettre en pause
action-resume = Reprendre
action-shut-down = Éteindre
action-force-off = Forcer l'arrêt
action-settings = Paramètres
action-delete = Supprimer…
action-more = Plus d'actions
vm-not-running = { $name } ne tourne pas.
vm-broken-cannot-start = Cette définition est illisible et ne peut donc pas démarrer ; réparez-la ou supprimez-la.
vm-start-failed = { $name } ne peut pas démarrer : { $reason }
vm-error = { $name } : { $reason }
vm-graphics-stopped = { $name } : le périphérique graphique s’est arrêté. La VM tourne toujours ; redémarrez-la depuis sa fenêtre pour retrouver l’affichage.
vm-network-down = { $name } : { $reason }
vm-stopped-unexpectedly = { $name } s'est arrêtée de façon inattendue : { $reason }
vm-3d-later = L'accélération 3D n'est pas encore dans cette version : cette machine virtuelle utilise pour l'instant un affichage 2D.
stop-triple-fault = le système invité a planté (triple faute)
stop-internal = le moniteur de machine virtuelle a échoué ({ $detail })
delete-title = Supprimer { $name } ?
delete-body = Sa définition est supprimée. Ses disques peuvent rester, dans un dossier à côté de la bibliothèque, ou être supprimés avec elle.
delete-body-broken = La définition endommagée est supprimée. Ses disques peuvent rester, dans un dossier à côté de la bibliothèque, ou être supprimés avec elle.
delete-keep-disks = Supprimer, garder les disques
delete-with-disks = Supprimer avec les disques
quit-running-title = Des machines virtuelles tournent
quit-running-body = { $count ->
    [one] Une machine virtuelle tourne. Fermer Phyllome l'arrête.
   *[other] { $count } machines virtuelles tournent. Fermer Phyllome les arrête.
}
quit-keep-open = Les laisser tourner
quit-shut-down = Éteindre et quitter
quit-force-off = Forcer l'arrêt et quitter

## La zone de notification
tray-show-window = Afficher Phyllome
tray-hide-window = Masquer Phyllome
tray-quit = Quitter
tray-running-count = { $count ->
    [0] Aucune machine virtuelle ne tourne
    [one] Une machine virtuelle tourne
   *[other] { $count } machines virtuelles tournent
}

## L'assistant d'installation
wizard-title = Nouvelle machine virtuelle
wizard-step = Étape { $step } sur 4 : { $what }
wizard-page-source = Installateur
wizard-page-resources = Ressources
wizard-page-graphics = Graphismes
wizard-page-summary = Récapitulatif
wizard-cancel = Annuler
wizard-back = Précédent
wizard-next = Suivant
wizard-create = Créer
wizard-open = Ouvrir
wizard-source-title = Choisir un installateur
wizard-source-description = Choisissez l'image d'installation (.iso) du système à installer, ou déposez-la sur cette fenêtre.
wizard-choose-image = Choisir une image d'installation…
wizard-iso-filter = Images d'installation
wizard-all-files = Tous les fichiers
wizard-image-group = Image d'installation
wizard-no-image = Aucune image choisie
wizard-no-image-hint = Tout installateur qui démarre sur un PC avec UEFI : Debian, Ubuntu, Fedora, Arch Linux, openSUSE et d'autres.
wizard-reading = Lecture de l'image…
wizard-boots-firmware = démarre avec le micrologiciel UEFI
wizard-windows-needs-disk = { $os } ne peut pas encore être installé : son installateur a besoin d'un disque AHCI (SATA) ou NVMe, et les disques de Phyllome sont des disques virtio, pour lesquels Windows n'a pas de pilote propre.
wizard-no-firmware = Le micrologiciel UEFI n'est pas installé, et les installateurs en ont besoin pour démarrer. Installez-le (sous Debian : apt install ovmf, qui le place dans { $path }), puis choisissez de nouveau l'image.
wizard-image-unusable = Ce fichier ne peut pas être utilisé
wizard-not-iso = « { $file } » n'est pas une image d'installation : il n'a pas de volume ISO 9660. Choisissez le fichier .iso que vous avez téléchargé.
wizard-iso-unreadable = { $file } ne peut pas être lu ({ $reason }). Vérifiez qu'il est toujours là et que vous avez le droit de le lire.
wizard-iso-damaged = L'image est endommagée ({ $reason }). Téléchargez-la à nouveau.
wizard-advanced = Avancé : démarrer un noyau
wizard-advanced-description = Un noyau Linux, un initrd facultatif et une ligne de commande, au lieu d'une image d'installation.
wizard-kernel = Noyau
wizard-initrd = Initrd (facultatif)
wizard-cmdline = Ligne de commande
wizard-kernel-missing = { $file } n'existe pas ; donnez le chemin complet du fichier.
wizard-default-name = Machine virtuelle
wizard-resources-title = Ressources
wizard-resources-description = Suggérées pour ce système et cet ordinateur. Le disque n'occupe de place qu'à mesure que le système le remplit.
wizard-name = Nom
wizard-name-empty = Donnez un nom à la machine virtuelle.
wizard-name-taken = Une machine virtuelle nommée « { $name } » existe déjà ; choisissez un autre nom.
wizard-cpus = Processeurs
wizard-cpus-host = Cet ordinateur en a { $count }
wizard-memory = Mémoire
wizard-memory-unit = Mio
wizard-disk = Taille du disque
wizard-disk-unit = Gio, au plus (il grandit à l'usage)
wizard-disk-format = Format du disque
wizard-format-qcow2 = qcow2 (grandit à l'usage)
wizard-format-raw = brut (le plus simple, creux)
wizard-graphics-title = Graphismes
wizard-graphics-description = Avec l'accélération 3D, le système dessine avec l'OpenGL de cet ordinateur.
wizard-3d = Accélération 3D
wizard-3d-probing = Vérification de ce que cet ordinateur sait dessiner…
wizard-3d-available = Disponible, rendue par { $renderer }
wizard-3d-available-software = Disponible, rendue sur le processeur par { $renderer } : cela fonctionne, plus lentement qu'avec une carte graphique
wizard-vulkan = Vulkan
wizard-summary-title = Récapitulatif
wizard-summary-description = Créer fabrique le disque, enregistre la machine virtuelle et démarre l'installateur.
wizard-creating = Création de la machine virtuelle
wizard-step-vars = Préparation des réglages du micrologiciel…
wizard-step-disk = Création du disque…
wizard-create-failed = La machine virtuelle n'a pas été créée : { $reason }
summary-os = Système
summary-installer = Image d'installation (attachée en lecture seule)
summary-kernel = Noyau
summary-name = Nom
summary-cpus = Processeurs
summary-memory = Mémoire
summary-disk = Disque
summary-disk-qcow2 = { $gib } Gio, qcow2
summary-disk-raw = { $gib } Gio, brut
summary-graphics = Graphismes
summary-3d-on = Accélération 3D
summary-3d-on-vulkan = Accélération 3D, avec OpenGL et Vulkan
summary-3d-off = 2D
summary-network = Réseau
summary-network-on = Réseau en mode utilisateur (passt) : la VM atteint ce que cet ordinateur atteint
summary-network-off = Aucun
size-mib = { $mib } Mio

## Ce que le test 3D a trouvé
graphics-disabled = OpenGL est désactivé dans cette session (GDK_DEBUG=gl-disable), l'accélération 3D est donc désactivée.
graphics-not-built = Cette version de Phyllome n'a pas de moteur de rendu 3D (compilée sans virglrenderer), l'accélération 3D est donc désactivée.
graphics-no-egl = Cet ordinateur n'a pas de bibliothèque OpenGL (libEGL) : installez Mesa pour obtenir l'accélération 3D. ({ $detail })
graphics-no-display = OpenGL ne peut pas dessiner sans écran ici : installez le pilote EGL de Mesa pour obtenir l'accélération 3D. ({ $detail })
graphics-no-context = Le pilote OpenGL ne peut pas créer de contexte de dessin, l'accélération 3D est donc désactivée. ({ $detail })
graphics-probe-crashed = Le pilote OpenGL a planté pendant le test ({ $how }), l'accélération 3D est donc désactivée.
graphics-probe-failed = OpenGL n'a pas pu être testé, l'accélération 3D est donc désactivée.
graphics-vulkan-available = Les invités ont aussi Vulkan (par venus), dessiné par { $device }
graphics-vulkan-no-loader = Les invités ont OpenGL mais pas Vulkan : cet ordinateur n’a pas de bibliothèque Vulkan (libvulkan1). ({ $detail })
graphics-vulkan-no-device = Les invités ont OpenGL mais pas Vulkan : cet ordinateur n’a pas de pilote Vulkan ; installez celui de votre carte graphique, ou celui de Mesa (mesa-vulkan-drivers). ({ $detail })
graphics-vulkan-no-venus = Les invités ont OpenGL mais pas Vulkan : le virglrenderer de cet ordinateur a été compilé sans venus.
graphics-vulkan-too-old = Les invités ont OpenGL mais pas Vulkan : le virglrenderer de cet ordinateur est trop ancien (venus demande la version 1.0 ou plus récente).
graphics-vulkan-failed = Les invités ont OpenGL mais pas Vulkan : le moteur 3D n’a pas pu démarrer. ({ $detail })
graphics-vulkan-unknown = Les invités ont OpenGL mais pas Vulkan : Vulkan n’a pas pu être testé.

## Erreurs
error-too-many-cpus = Cet ordinateur a { $host } processeurs ; donnez-en au plus { $host } à la machine virtuelle.
error-no-cpu = Donnez au moins un processeur à la machine virtuelle.
error-too-much-memory = Cet ordinateur a { $host } Mio de mémoire ; donnez au plus { $max } Mio à la machine virtuelle pour que le bureau en garde assez.
error-too-little-memory = { $min } Mio de mémoire est le minimum pour faire tourner un installateur.
error-disk-too-large = Le disque pourrait atteindre { $want } Gio, mais seuls { $free } Gio sont libres à cet endroit ; choisissez un disque plus petit ou libérez de la place.
error-disk-too-small = Un disque de moins de { $min } Gio ne peut pas contenir de système d'exploitation.
error-store-io = { $path } ne peut pas être lu ou écrit ({ $reason }). Vérifiez que le disque n'est pas plein et que vous avez le droit d'y écrire.
error-store-broken = La définition { $path } est illisible ({ $reason }) ; elle a été laissée telle quelle. Réparez-la ou supprimez-la d'abord.
error-store-gone = Le dossier de cette machine virtuelle, { $path }, a disparu ; il a été supprimé en dehors de Phyllome.

## Les paramètres d'une machine virtuelle
settings-title = Paramètres de { $name }
settings-general = Général
settings-next-start = Les changements prennent effet au prochain démarrage de la machine virtuelle.
settings-network = Réseau
settings-network-switch = Carte réseau
settings-network-passt = Réseau en mode utilisateur par passt : la VM atteint ce que cet ordinateur atteint, sans configuration.
settings-network-no-passt = passt n’est pas installé : la VM démarrerait sans réseau. Installez le paquet passt (sous Debian et Ubuntu : apt install passt).
settings-network-mac = Adresse matérielle
settings-network-forwards = Ports redirigés
settings-network-forwards-description = Ports de cet ordinateur qui mènent à la VM, sous la forme tcp:HÔTE:INVITÉ ou udp:HÔTE:INVITÉ, séparés par des virgules ; tcp:2222:22 fait arriver le port 2222 de cet ordinateur au SSH de la VM.
settings-network-forwards-entry = Ports
settings-network-forwards-invalid = Les ports n’ont pas été changés : { $reason }
settings-sound = Son
settings-sound-switch = Carte son
settings-sound-description = Joue par le son de cet ordinateur (PipeWire), en suivant ses haut-parleurs et son microphone par défaut.
settings-microphone = Microphone
settings-microphone-description = Laisse la VM entendre le microphone de cet ordinateur. Désactivé, la VM enregistre du silence.
display-microphone-on = La VM entend votre microphone : cliquez pour arrêter
display-microphone-off = La VM n’entend pas votre microphone : cliquez pour l’autoriser
settings-disks = Disques
settings-add-disk = Ajouter un disque…
settings-remove-disk = Détacher ce disque (le fichier reste)
settings-eject = Éjecter
settings-disk-readonly = { $path } (lecture seule)
settings-cdroms = Lecteurs CD/DVD
settings-add-cdrom = Ajouter un lecteur
settings-cdrom-drive = Lecteur { $number }
settings-cdrom-drive-holds = Lecteur { $number } : { $path }
settings-cdrom-empty = Aucun disque
settings-cdrom-insert = Insérer un disque…
settings-cdrom-live = Les disques changent aussitôt, comme dans un vrai lecteur ; un lecteur ajouté apparaît au prochain démarrage.
vm-disc-ejected = Le disque du lecteur { $number } de { $name } a été retiré.
vm-disc-locked = { $name } garde le disque du lecteur { $number } verrouillé tant qu'il l'utilise. Éjectez-le depuis la machine virtuelle, ou forcez l'éjection.
vm-disc-force = Forcer l'éjection
settings-graphics = Graphismes
settings-boot = Démarrage
settings-boot-description = Ce que la machine virtuelle démarre : un noyau Linux, son initrd et sa ligne de commande.
settings-kernel-needed = La machine virtuelle a besoin d'un noyau pour démarrer.
settings-invalid = Ce changement n'a pas été enregistré : { $reason }
settings-saved = Enregistré.
settings-boot-firmware = Micrologiciel UEFI : { $path }
settings-boot-vars = Ses réglages et entrées de démarrage sont gardés dans { $path }
settings-boot-kernel = Noyau, démarré directement
