"""Is an ELF file fully static? Read from its headers, not from `file`'s wording.

Fully static means: no PT_INTERP program header (nothing asks the kernel for a
dynamic loader) and no DT_NEEDED entry in a dynamic section (no shared library
to load). A static-PIE binary has a PT_DYNAMIC without DT_NEEDED: static too.

Run as a program: elfcheck.py FILE... prints one line per file and exits 1 if
any is not a fully static 64-bit little-endian ELF executable.
"""
import struct
import sys

PT_DYNAMIC, PT_INTERP = 2, 3
DT_NULL, DT_NEEDED = 0, 1
ET_EXEC, ET_DYN = 2, 3
MACHINES = {62: "amd64", 183: "arm64"}


class NotStatic(Exception):
    pass


def inspect(path):
    """Returns {"arch", "type", "interp", "needed"} for a 64-bit LE ELF file;
    raises NotStatic when it is not one or its headers do not add up."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise NotStatic(f"{path}: not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise NotStatic(f"{path}: not a 64-bit little-endian ELF file")
    (e_type, e_machine, _, _, e_phoff, _, _, _, e_phentsize, e_phnum,
     _, _, _) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
    if e_type not in (ET_EXEC, ET_DYN):
        raise NotStatic(f"{path}: ELF type {e_type} is not an executable")
    if e_phentsize != 56 or e_phoff + e_phnum * 56 > len(data):
        raise NotStatic(f"{path}: program headers out of the file")
    info = {"arch": MACHINES.get(e_machine, f"machine {e_machine}"), "type": e_type,
            "interp": None, "needed": 0, "dynamic": False}
    for i in range(e_phnum):
        p_type, _, p_offset, _, _, p_filesz, _, _ = struct.unpack_from(
            "<IIQQQQQQ", data, e_phoff + i * 56)
        if p_offset + p_filesz > len(data):
            raise NotStatic(f"{path}: segment {i} out of the file")
        if p_type == PT_INTERP:
            info["interp"] = data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode(
                errors="replace")
        elif p_type == PT_DYNAMIC:
            info["dynamic"] = True
            for off in range(p_offset, p_offset + p_filesz - 15, 16):
                tag, _ = struct.unpack_from("<qQ", data, off)
                if tag == DT_NULL:
                    break
                if tag == DT_NEEDED:
                    info["needed"] += 1
    return info


def check_static(path):
    """The file's architecture; raises NotStatic unless it is fully static."""
    info = inspect(path)
    if info["interp"] is not None:
        raise NotStatic(f"{path}: has PT_INTERP ({info['interp']})")
    if info["needed"]:
        raise NotStatic(f"{path}: its dynamic section needs {info['needed']} shared libraries")
    return info["arch"]


def main(paths):
    bad = 0
    for p in paths:
        try:
            print(f"{p}: static, {check_static(p)}")
        except (NotStatic, OSError) as e:
            print(f"NOT STATIC: {e}")
            bad = 1
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
