#!/usr/bin/python3
"""Reads and drives Phyllome's windows through the accessibility tree (AT-SPI), the way
screen readers and GNOME's dogtail tests do: the UI tests use it to see which labels show
and to press buttons by their names. Debian's python3-pyatspi; run with /usr/bin/python3.

  ui.py tree                 every showing object of the app: ROLE<TAB>NAME<TAB>STATES
  ui.py press NAME [WINDOW]  presses the button named NAME (in the window named WINDOW)
  ui.py wait TEXT [SECONDS]  waits until a showing object's name contains TEXT
"""
import sys
import time

import pyatspi

APP = "phyllome"


def apps():
    desktop = pyatspi.Registry.getDesktop(0)
    return [a for a in desktop if a is not None and a.name == APP]


def walk(acc, out, frame=""):
    try:
        states = acc.getState()
        showing = states.contains(pyatspi.STATE_VISIBLE)
        role = acc.getRoleName()
        name = acc.name or ""
        count = acc.childCount
    except Exception:  # The object went away while we looked.
        return
    # GTK 4.8 marks hidden stack pages visible too: tests look for text that only one
    # state of a window shows.
    if role not in ("application",) and not showing:
        return
    flags = []
    for state, word in (
        (pyatspi.STATE_SENSITIVE, "sensitive"),
        (pyatspi.STATE_CHECKED, "checked"),
        (pyatspi.STATE_FOCUSED, "focused"),
    ):
        if states.contains(state):
            flags.append(word)
    if role in ("frame", "dialog", "alert"):
        frame = name
    out.append((acc, role, name, flags, frame))
    for i in range(count):
        try:
            child = acc.getChildAtIndex(i)
        except Exception:
            continue
        if child is not None:
            walk(child, out, frame)


def tree():
    out = []
    for a in apps():
        walk(a, out)
    return out


def act(acc):
    """Does the object's first action; whether it had one."""
    try:
        acc.queryAction().doAction(0)
        return True
    except Exception:
        return False


def press(want, window):
    """Presses the button (or menu item, switch, tab) named `want`; whether one was."""
    nodes = tree()
    roles = ("push button", "toggle button", "menu item", "check box", "page tab")
    for acc, role, name, _, frame in nodes:
        if (window is None or frame == window) and role in roles and name == want:
            # A menu button is a button holding a button: the inner one acts.
            if act(acc):
                return True
    # A button whose name GTK left empty: its label, and the button above it.
    for acc, role, name, _, frame in nodes:
        if (window is None or frame == window) and role == "label" and name == want:
            parent = acc.parent
            while parent is not None and parent.getRoleName() not in roles:
                parent = parent.parent
            if parent is not None and act(parent):
                return True
    return False


def main():
    cmd = sys.argv[1]
    if cmd == "tree":
        for _, role, name, flags, _ in tree():
            print(f"{role}\t{name}\t{','.join(flags)}")
    elif cmd == "press":
        want = sys.argv[2]
        window = sys.argv[3] if len(sys.argv) > 3 else None
        # Menus and dialogs open a moment after the click that asks for them.
        deadline = time.time() + 5
        while True:
            if press(want, window):
                return 0
            if time.time() > deadline:
                break
            time.sleep(0.3)
        print(f"no showing button named {want!r}", file=sys.stderr)
        return 1
    elif cmd == "wait":
        want = sys.argv[2]
        deadline = time.time() + float(sys.argv[3] if len(sys.argv) > 3 else 20)
        while time.time() < deadline:
            if any(want in node[2] for node in tree()):
                return 0
            time.sleep(0.3)
        print(f"nothing showing says {want!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
