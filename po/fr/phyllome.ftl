# L'interface de Phyllome, en français.

app-name = Phyllome
welcome-title = Phyllome

## Ce que la première fenêtre dit de cet ordinateur
kvm-ready = Faites tourner votre propre système d'exploitation dans une fenêtre. Cet ordinateur peut exécuter des machines virtuelles.
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
display-fullscreen = Plein écran (F11)
display-leave-fullscreen = Quitter le plein écran
display-leave-fullscreen-tooltip = Quitter le plein écran (F11)
