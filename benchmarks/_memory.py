"""Peak-memory measurement shared by the benchmark scripts (Linux /proc; each case runs in its own process)."""


def proc_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def reset_peak():
    """Reset VmHWM to the current RSS; True if that worked (checked, not assumed)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return proc_kib("VmHWM") <= proc_kib("VmRSS") + 1024
    except OSError:
        return False
