#!/usr/bin/env python3
"""Prints the module files (relative to MODULES_DIR) that loading NAME... needs, in the
order insmod must load them: each module after everything it depends on (modules.dep)."""
import os
import sys


def main() -> None:
    modules_dir, names = sys.argv[1], sys.argv[2:]
    deps = {}
    with open(os.path.join(modules_dir, "modules.dep")) as f:
        for line in f:
            path, _, rest = line.partition(":")
            deps[path] = rest.split()
    by_name = {os.path.basename(p).split(".ko")[0].replace("-", "_"): p for p in deps}
    order = []

    def visit(path: str) -> None:
        for dep in reversed(deps.get(path, [])):
            visit(dep)
        if path not in order:
            order.append(path)

    for name in names:
        key = name.replace("-", "_")
        if key not in by_name:
            sys.exit(f"module-order: no module named {name} in {modules_dir}")
        visit(by_name[key])
    print("\n".join(order))


if __name__ == "__main__":
    main()
