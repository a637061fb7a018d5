#!/usr/bin/python3
"""A fake StatusNotifierWatcher (the tray host's side of the StatusNotifierItem protocol)
on the session bus, for the tray test: it owns org.kde.StatusNotifierWatcher, prints
"registered SERVICE" for each item that registers, and serves until killed.
Debian's python3-dbus and python3-gi; run with /usr/bin/python3.

  sni_watcher.py                      serve
  sni_watcher.py click SERVICE LABEL  clicks the item's menu entry LABEL (dbusmenu Event)
  sni_watcher.py menu SERVICE         prints the item's menu labels, one per line
"""
import sys

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

IFACE = "org.kde.StatusNotifierWatcher"


class Watcher(dbus.service.Object):
    def __init__(self, bus):
        self.items = []
        super().__init__(bus, "/StatusNotifierWatcher")

    @dbus.service.method(IFACE, in_signature="s", sender_keyword="sender")
    def RegisterStatusNotifierItem(self, service, sender=None):
        # A bare object path means "this path on the caller's connection".
        name = sender if service.startswith("/") else service
        self.items.append(name)
        print(f"registered {name}", flush=True)
        self.StatusNotifierItemRegistered(name)

    @dbus.service.method(IFACE, in_signature="s")
    def RegisterStatusNotifierHost(self, service):
        pass

    @dbus.service.signal(IFACE, signature="s")
    def StatusNotifierItemRegistered(self, service):
        pass

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="ss", out_signature="v")
    def Get(self, interface, prop):
        return self.GetAll(interface)[prop]

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="s", out_signature="a{sv}")
    def GetAll(self, interface):
        return {
            "RegisteredStatusNotifierItems": dbus.Array(self.items, signature="s"),
            "IsStatusNotifierHostRegistered": dbus.Boolean(True),
            "ProtocolVersion": dbus.Int32(0),
        }


def entries(layout):
    """(id, label) of every entry in a dbusmenu layout, depth first."""
    item_id, props, children = layout
    out = []
    if "label" in props:
        out.append((int(item_id), str(props["label"])))
    for child in children:
        out.extend(entries(child))
    return out


def menu(bus, service):
    obj = bus.get_object(service, "/MenuBar")
    menu_iface = dbus.Interface(obj, "com.canonical.dbusmenu")
    _, layout = menu_iface.GetLayout(0, -1, dbus.Array([], signature="s"))
    return menu_iface, entries(layout)


def main():
    if len(sys.argv) > 1:
        bus = dbus.SessionBus()
        iface, items = menu(bus, sys.argv[2])
        if sys.argv[1] == "menu":
            for _, label in items:
                print(label)
            return 0
        want = sys.argv[3]
        for item_id, label in items:
            if label == want:
                iface.Event(item_id, "clicked", dbus.Int32(0, variant_level=1), dbus.UInt32(0))
                return 0
        print(f"no menu entry {want!r} in {items}", file=sys.stderr)
        return 1
    DBusGMainLoop(set_as_default=True)
    bus = dbus.SessionBus()
    name = dbus.service.BusName(IFACE, bus)
    watcher = Watcher(bus)
    print("ready", flush=True)
    GLib.MainLoop().run()
    del name, watcher
    return 0


if __name__ == "__main__":
    sys.exit(main())
