# Phyllome's user interface, English (United States): the reference every other locale
# follows key for key.

app-name = Phyllome

## What the library says about this computer's KVM
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
display-gpu-stopped = The graphics device stopped
display-gpu-stopped-detail = The virtual machine is still running, without its display. Restart it to get the display back; its disks are not affected.
display-restart = Restart
display-fullscreen = Fullscreen (F11)
display-leave-fullscreen = Leave Fullscreen
display-leave-fullscreen-tooltip = Leave fullscreen (F11)

## The library window
library-new = New Virtual Machine (Ctrl+N)
library-empty-title = No Virtual Machines Yet
library-empty-description = Install an operating system from its installer image: it runs in a window, with its own disk.
library-empty-create = Create a Virtual Machine
library-unavailable = The Library Cannot Be Opened
library-broken = Damaged definition in “{ $folder }”
library-still-running = Phyllome keeps your virtual machines running; find it in the tray.
os-unknown = Unknown system
state-off = Off
state-starting = Starting…
state-running = Running
state-paused = Paused
state-shutting-down = Shutting down…
state-no-network = no network
action-start = Start
action-open-display = Show the Display
action-pause = Pause
action-resume = Resume
action-shut-down = Shut Down
action-force-off = Force Off
action-settings = Settings
action-delete = Delete…
action-more = More Actions
vm-not-running = { $name } is not running.
vm-broken-cannot-start = This definition cannot be read, so it cannot start; fix or delete it.
vm-start-failed = { $name } cannot start: { $reason }
vm-error = { $name }: { $reason }
vm-graphics-stopped = { $name }: the graphics device stopped. The VM is still running; restart it from its window to get the display back.
vm-network-down = { $name }: { $reason }
vm-stopped-unexpectedly = { $name } stopped unexpectedly: { $reason }
vm-3d-later = 3D acceleration is not in this version yet: this virtual machine runs with 2D graphics for now.
stop-triple-fault = the guest crashed (triple fault)
stop-internal = the virtual machine monitor failed ({ $detail })
delete-title = Delete { $name }?
delete-body = Its definition is removed. Its disks can stay, in a folder beside the library, or be deleted with it.
delete-body-broken = The damaged definition is removed. Its disks can stay, in a folder beside the library, or be deleted with it.
delete-keep-disks = Delete, Keep Disks
delete-with-disks = Delete With Disks
quit-running-title = Virtual Machines Are Running
quit-running-body = { $count ->
    [one] One virtual machine is running. Closing Phyllome stops it.
   *[other] { $count } virtual machines are running. Closing Phyllome stops them.
}
quit-keep-open = Keep Running
quit-shut-down = Shut Down and Quit
quit-force-off = Force Off and Quit

## The tray
tray-show-window = Show Phyllome
tray-hide-window = Hide Phyllome
tray-quit = Quit
tray-running-count = { $count ->
    [0] No virtual machine is running
    [one] One virtual machine is running
   *[other] { $count } virtual machines are running
}

## The install wizard
wizard-title = New Virtual Machine
wizard-step = Step { $step } of 4: { $what }
wizard-page-source = Installer
wizard-page-resources = Resources
wizard-page-graphics = Graphics
wizard-page-summary = Summary
wizard-cancel = Cancel
wizard-back = Back
wizard-next = Next
wizard-create = Create
wizard-open = Open
wizard-source-title = Choose an Installer
wizard-source-description = Pick the installer image (.iso) of the system to install, or drop it on this window.
wizard-choose-image = Choose Installer Image…
wizard-iso-filter = Installer images
wizard-all-files = All files
wizard-image-group = Installer image
wizard-no-image = No image chosen
wizard-no-image-hint = Any installer that starts on a PC with UEFI: Debian, Ubuntu, Fedora, Arch Linux, openSUSE and others.
wizard-reading = Reading the image…
wizard-boots-firmware = starts with UEFI firmware
wizard-windows-needs-disk = { $os } cannot be installed yet: its installer needs an AHCI (SATA) or NVMe disk, and Phyllome's disks are virtio disks, for which Windows has no driver of its own.
wizard-no-firmware = UEFI firmware is not installed, and installers need it to start. Install it (on Debian: apt install ovmf, which puts it at { $path }), then choose the image again.
wizard-image-unusable = This file cannot be used
wizard-not-iso = “{ $file }” is not an installer image: it has no ISO 9660 volume. Choose the .iso file you downloaded.
wizard-iso-unreadable = { $file } cannot be read ({ $reason }). Check that it is still there and that you may read it.
wizard-iso-damaged = The image is damaged ({ $reason }). Download it again.
wizard-advanced = Advanced: Start a Kernel
wizard-advanced-description = A Linux kernel, an optional initrd and a command line, instead of an installer image.
wizard-kernel = Kernel
wizard-initrd = Initrd (optional)
wizard-cmdline = Command line
wizard-kernel-missing = { $file } does not exist; give the full path of the file.
wizard-default-name = Virtual machine
wizard-resources-title = Resources
wizard-resources-description = Suggested for this system and this computer. The disk takes space only as the system fills it.
wizard-name = Name
wizard-name-empty = Give the virtual machine a name.
wizard-name-taken = A virtual machine named “{ $name }” exists already; choose another name.
wizard-cpus = Processors
wizard-cpus-host = This computer has { $count }
wizard-memory = Memory
wizard-memory-unit = MiB
wizard-disk = Disk size
wizard-disk-unit = GiB, at most (it grows as it is used)
wizard-disk-format = Disk format
wizard-format-qcow2 = qcow2 (grows as used)
wizard-format-raw = raw (simplest, sparse)
wizard-graphics-title = Graphics
wizard-graphics-description = With 3D acceleration the system draws with this computer's OpenGL.
wizard-3d = 3D acceleration
wizard-3d-probing = Checking what this computer can draw…
wizard-3d-available = Available, drawn by { $renderer }
wizard-3d-available-software = Available, drawn on the processor by { $renderer }: it works, more slowly than with a graphics card
wizard-vulkan = Vulkan
wizard-summary-title = Summary
wizard-summary-description = Create makes the disk, saves the virtual machine and starts the installer.
wizard-creating = Creating the Virtual Machine
wizard-step-vars = Preparing the firmware's settings…
wizard-step-disk = Making the disk…
wizard-create-failed = The virtual machine was not created: { $reason }
summary-os = System
summary-installer = Installer image (attached read-only)
summary-kernel = Kernel
summary-name = Name
summary-cpus = Processors
summary-memory = Memory
summary-disk = Disk
summary-disk-qcow2 = { $gib } GiB, qcow2
summary-disk-raw = { $gib } GiB, raw
summary-graphics = Graphics
summary-3d-on = 3D acceleration
summary-3d-on-vulkan = 3D acceleration, with OpenGL and Vulkan
summary-3d-off = 2D
summary-network = Network
summary-network-on = User-mode networking (passt): the VM reaches what this computer reaches
summary-network-off = None
size-mib = { $mib } MiB

## What the 3D probe found
graphics-disabled = OpenGL is turned off in this session (GDK_DEBUG=gl-disable), so 3D acceleration is off.
graphics-not-built = This build of Phyllome has no 3D renderer (it was built without virglrenderer), so 3D acceleration is off.
graphics-no-egl = This computer has no OpenGL library (libEGL): install Mesa to get 3D acceleration. ({ $detail })
graphics-no-display = OpenGL cannot draw without a screen here: install Mesa's EGL driver to get 3D acceleration. ({ $detail })
graphics-no-context = The OpenGL driver cannot create a drawing context, so 3D acceleration is off. ({ $detail })
graphics-probe-crashed = The OpenGL driver crashed while being tested ({ $how }), so 3D acceleration is off.
graphics-probe-failed = OpenGL could not be tested, so 3D acceleration is off.
graphics-vulkan-available = Guests get Vulkan too (through venus), drawn by { $device }
graphics-vulkan-no-loader = Guests get OpenGL but no Vulkan: this computer has no Vulkan library (libvulkan1). ({ $detail })
graphics-vulkan-no-device = Guests get OpenGL but no Vulkan: this computer has no Vulkan driver; install your graphics card's, or Mesa's (mesa-vulkan-drivers). ({ $detail })
graphics-vulkan-no-venus = Guests get OpenGL but no Vulkan: this computer's virglrenderer was built without venus.
graphics-vulkan-too-old = Guests get OpenGL but no Vulkan: this computer's virglrenderer is too old (venus needs version 1.0 or newer).
graphics-vulkan-failed = Guests get OpenGL but no Vulkan: the 3D renderer could not start. ({ $detail })
graphics-vulkan-unknown = Guests get OpenGL but no Vulkan: Vulkan could not be tested.

## Errors
error-too-many-cpus = This computer has { $host } processors; give the virtual machine at most { $host }.
error-no-cpu = Give the virtual machine at least one processor.
error-too-much-memory = This computer has { $host } MiB of memory; give the virtual machine at most { $max } MiB so the desktop keeps enough.
error-too-little-memory = { $min } MiB of memory is the least an installer runs in.
error-disk-too-large = The disk could grow to { $want } GiB, but only { $free } GiB is free there; choose a smaller disk or free some space.
error-disk-too-small = A disk of less than { $min } GiB cannot hold an operating system.
error-store-io = { $path } cannot be read or written ({ $reason }). Check that the disk is not full and that you may write there.
error-store-broken = The definition { $path } cannot be read ({ $reason }); it was left as it is. Fix or remove it first.
error-store-gone = The folder of this virtual machine, { $path }, is gone; it was removed outside Phyllome.

## A VM's settings
settings-title = { $name } Settings
settings-general = General
settings-next-start = Changes take effect the next time the virtual machine starts.
settings-network = Network
settings-network-switch = Network card
settings-network-passt = User-mode networking through passt: the VM reaches what this computer reaches, with no setup.
settings-network-no-passt = passt is not installed, so the VM would start without a network. Install the passt package (on Debian and Ubuntu: apt install passt).
settings-network-mac = Hardware address
settings-network-forwards = Forwarded ports
settings-network-forwards-description = Host ports that lead into the VM, as tcp:HOST:GUEST or udp:HOST:GUEST, separated by commas; tcp:2222:22 makes this computer's port 2222 reach the VM's SSH.
settings-network-forwards-entry = Ports
settings-network-forwards-invalid = The ports were not changed: { $reason }
settings-sound = Sound
settings-sound-switch = Sound card
settings-sound-description = Plays through this computer's sound (PipeWire), following its default speakers and microphone.
settings-microphone = Microphone
settings-microphone-description = Lets the VM hear this computer's microphone. Off, the VM records silence.
display-microphone-on = The VM hears your microphone: click to stop
display-microphone-off = The VM does not hear your microphone: click to let it
settings-disks = Disks
settings-add-disk = Add Disk…
settings-remove-disk = Detach this disk (the file stays)
settings-eject = Eject
settings-disk-readonly = { $path } (read-only)
settings-cdroms = CD/DVD Drives
settings-add-cdrom = Add Drive
settings-cdrom-drive = Drive { $number }
settings-cdrom-drive-holds = Drive { $number }: { $path }
settings-cdrom-empty = No disc
settings-cdrom-insert = Insert Disc…
settings-cdrom-live = Discs change at once, as in a real drive; an added drive appears at the next start.
vm-disc-ejected = The disc in { $name }'s drive { $number } was taken out.
vm-disc-locked = { $name } keeps the disc in drive { $number } locked while it uses it. Eject it from inside the virtual machine, or force it out.
vm-disc-force = Force Eject
settings-graphics = Graphics
settings-boot = Boot
settings-boot-description = What the virtual machine starts: a Linux kernel, its initrd and its command line.
settings-kernel-needed = The virtual machine needs a kernel to start.
settings-invalid = This change was not saved: { $reason }
settings-saved = Saved.
settings-boot-firmware = UEFI firmware: { $path }
settings-boot-vars = Its settings and boot entries are kept in { $path }
settings-boot-kernel = Kernel, started directly
