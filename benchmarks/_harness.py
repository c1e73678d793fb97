"""Shared benchmark plumbing: each case runs in its own process (run_case); peak memory from Linux /proc."""


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


def spawn_case(cmd: list[str], *, timeout_s: float) -> dict:
    """Run one benchmark case in its own process: its last stdout line as JSON, or
    {"error": the last stderr line, "returncode": ...} when it failed."""
    import json
    import subprocess
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout > {timeout_s:.0f} s", "returncode": None}
    lines = p.stdout.strip().splitlines()
    if p.returncode == 0 and lines:
        return json.loads(lines[-1])
    return {"error": (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1], "returncode": p.returncode}
