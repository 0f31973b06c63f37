"""What identifies a process beyond its pid: the machine's boot and the process's start time (Linux)."""

from __future__ import annotations


def boot_id() -> str | None:
    """This boot of the machine (Linux), None if unknown: a reboot kills every process."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            return file.read().strip()
    except OSError:
        return None


def start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), 'zombie', or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return "zombie" if fields[0] in ("Z", "X") else fields[19]
