"""Checks pyimmortal.h against the symbols that libpyimmortal.a defines.

    header_exports.py NM HEADER LIBRARY TARGET

- every pyimmortal_ name that a macro of the header expands to (the
  trailer's target-check wrappers, the CPython names mapped to pyimmortal's
  implementation) is a function the library defines;
- every pyimmortal_ function the library defines is declared in the header
  (the internal ones listed below excepted), and every function the header
  declares is defined;
- the library defines the target symbol pyimmortal_abi_cpython_3_<minor>[t]
  of TARGET (for example 3.14t), which the header's PYIMMORTAL_ABI_PASTE_
  macros spell, and no other target's.

Run by ctest (label abi) for each target; exits 1 with a list of the
problems.
"""

import re
import subprocess
import sys

# Defined by the library for its own use, not part of the C API.
INTERNAL = {
    "pyimmortal_sys_thread_id": "the C shim for the free-threaded thread id, called from Rust",
}

ABI_PREFIX = "pyimmortal_abi_cpython_"


def macros(header):
    """(name, parameters or None, body) of each #define, continuation lines joined."""
    text = re.sub(r"\\\n", " ", header)
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    found = []
    for m in re.finditer(r"^\s*#\s*define\s+(\w+)(\(([^)]*)\))?(.*)$", text, re.M):
        params = [p.strip() for p in m.group(3).split(",")] if m.group(2) else None
        found.append((m.group(1), params, m.group(4).strip()))
    return found


def declared_functions(header):
    """Names of the functions the header declares: `type name(args);` lines."""
    text = re.sub(r"/\*.*?\*/", " ", header, flags=re.S)
    text = re.sub(r"^\s*#.*(\\\n.*)*$", " ", text, flags=re.M)
    return set(re.findall(r"\b(pyimmortal_\w+)\s*\([^;{}]*\)\s*;", text))


def library_symbols(nm, library):
    """{name: nm type letter} of the global symbols the archive defines."""
    out = subprocess.run([nm, "-g", "--defined-only", library], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit("header_exports: %s failed: %s" % (nm, out.stderr.strip()))
    symbols = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            symbols[parts[2]] = parts[1]
    return symbols


def main(nm, header_path, library, target):
    with open(header_path) as f:
        header = f.read()
    m = re.fullmatch(r"3\.(\d+)(t?)", target)
    if not m:
        raise SystemExit("header_exports: bad target %r" % target)
    minor, flavor = m.groups()
    symbols = library_symbols(nm, library)
    functions = {s for s, kind in symbols.items() if s.startswith("pyimmortal_") and kind == "T"}
    problems = []

    # Names the header's macros expand to. Token pasting (`a_##minor##t`)
    # builds the target symbol, checked below.
    mapped, abi_names = set(), set()
    for name, params, body in macros(header):
        if "##" in body:
            for param in params or []:
                body = re.sub(r"\b%s\b" % re.escape(param), minor, body)
            body = re.sub(r"\s*##\s*", "", body)
            abi_names.update(n for n in re.findall(r"\bpyimmortal_\w+", body)
                             if n.startswith(ABI_PREFIX))
            continue
        mapped.update(re.findall(r"\bpyimmortal_\w+", body))
    if len(mapped) < 2:
        problems.append("found only %s among the header's macros: is the header parsed right?"
                        % sorted(mapped))
    for name in sorted(mapped - functions):
        problems.append("the header's macros use %s, which the library does not define as a "
                        "function (nm: %s)" % (name, symbols.get(name, "absent")))

    declared = declared_functions(header)
    for name in sorted(functions - declared - set(INTERNAL)):
        problems.append("the library defines %s, which the header does not declare" % name)
    for name in sorted(declared - functions):
        problems.append("the header declares %s, which the library does not define" % name)
    for name in sorted(set(INTERNAL) & declared):
        problems.append("the internal %s is declared in the header" % name)

    want = "%s3_%s%s" % (ABI_PREFIX, minor, flavor)
    defined_abi = sorted(s for s in symbols if s.startswith(ABI_PREFIX))
    if defined_abi != [want]:
        problems.append("the library for %s defines the target symbols %s, want exactly %s"
                        % (target, defined_abi, want))
    if want not in abi_names:
        problems.append("the header's target macros spell %s for %s, not %s"
                        % (sorted(abi_names), target, want))

    internal = sorted(functions & set(INTERNAL))
    print("header_exports: %d names mapped by macros, %d functions declared, %d defined%s; "
          "target symbol %s" % (len(mapped), len(declared), len(functions),
                                " (internal: %s)" % ", ".join(internal) if internal else "", want))
    for p in problems:
        print("header_exports: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    sys.exit(main(*sys.argv[1:]))
