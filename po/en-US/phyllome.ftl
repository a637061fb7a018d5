# Phyllome's user interface, English (United States): the reference every other locale
# follows key for key.

app-name = Phyllome
welcome-title = Phyllome

## What the first window says about this computer
kvm-ready = Run your own operating system in a window. This computer can run virtual machines.
kvm-software = This computer's KVM has no hardware virtualization behind it (it is itself a virtual machine): guests would crawl.
kvm-missing = This computer cannot run virtual machines yet: enable virtualization in its firmware settings.
kvm-no-permission = No permission to use /dev/kvm: add yourself to the kvm group, then log in again.

## The display window
display-default-name = Virtual machine
display-window-title = { $name } – Phyllome
display-running-captured = Running · Ctrl+Alt releases the keyboard
display-running-released = Running · click the screen to capture the keyboard
display-connecting = Connecting to the display…
display-waiting = Waiting for the guest's display…
display-lost = The display was lost
display-lost-stopped = The virtual machine stopped, or its graphics device closed the connection.
display-lost-not-running = The virtual machine is not running (nothing listens on its display socket).
display-reconnect = Reconnect
display-fullscreen = Fullscreen (F11)
display-leave-fullscreen = Leave Fullscreen
display-leave-fullscreen-tooltip = Leave fullscreen (F11)
