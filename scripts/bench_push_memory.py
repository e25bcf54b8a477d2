"""`scripts/bench --push-memory`: the daemon's memory around real pushes and a clone.

Starts its own pushd (temporary state dir, free loopback ports), then for each size pushes a
new app whose repo holds that much incompressible random data (files of `--file-mb`, never
over max_object_mb) with real `git push` over OpenSSH, and clones the largest back. For each:
the daemon's resident memory idle before, its peak during (sampled VmRSS every 20 ms plus
VmHWM), the peak of the daemon plus its git children (index-pack, upload-pack and what they
start), the peak of the daemon plus every descendant (builds, and the router and dynos it
started, included), and its VmRSS once the push is over. Stops everything at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.e2e.harness import PushdUnderTest, new_root, python_app, sh  # noqa: E402
from tests.memsample import Sampler, status_kb  # noqa: E402

SETTLE_SECONDS = 3.0  # after a push: the daemon's threads end, the allocator gives back


def random_files(repo: Path, total_mb: int, file_mb: int) -> None:
    folder = repo / "data"
    folder.mkdir(exist_ok=True)
    left, index = total_mb, 0
    while left > 0:
        size = min(file_mb, left)
        with open(folder / f"blob-{index}.bin", "wb") as out:
            for _ in range(size):
                out.write(os.urandom(1024 * 1024))
        left, index = left - size, index + 1


def settled_rss(pid: int) -> int:
    time.sleep(SETTLE_SECONDS)
    return status_kb(pid, "VmRSS")


def mb(kb: int) -> str:
    return f"{kb / 1024:.0f}"


def measure(platform: PushdUnderTest, label: str, action) -> list[str]:  # noqa: ANN001
    pid = platform.daemon_pid()
    assert pid is not None
    idle = settled_rss(pid)
    start = time.monotonic()
    with Sampler(pid) as sampler:
        result = action()
    took = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"{label} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    after = settled_rss(pid)
    peak = sampler.peak
    biggest = sorted(peak.by_name.items(), key=lambda item: -item[1])[:4]
    print(f"{label}: largest descendants (MB): "
          + ", ".join(f"{name} {mb(kb)}" for name, kb in biggest), file=sys.stderr)
    return [label, mb(idle), mb(peak.daemon_kb), mb(peak.git_kb), mb(peak.tree_kb), mb(after),
            f"+{mb(peak.git_kb - idle)}", f"{took:.1f}"]


def run(sizes: list[int], file_mb: int) -> list[list[str]]:
    root = new_root("pushd-bench-pushmem-")
    platform = PushdUnderTest(root, settings={
        "boot_timeout": 8, "stop_timeout": 5, "drain_seconds": 0.5, "build_timeout": 900,
        "dyno_disk_mb": 64})
    rows = []
    try:
        platform.start()
        last = None
        for size in sizes:
            name = f"pushmem-bench-{size}"
            repo = platform.new_app_repo(name, python_app(f"{size} MB"))
            random_files(repo, size, file_mb)
            platform.commit(repo, {".slugignore": "data/\n"}, message=f"{size} MB of data")
            rows.append(measure(platform, f"push {size} MB", lambda r=repo: platform.push(
                r, timeout=1800)))
            platform.wait_for(name, f"{size} MB")
            last = name
        if last is not None:
            clone = root / "clone"
            rows.append(measure(platform, f"clone {sizes[-1]} MB", lambda: sh(
                ["git", "clone", "-q", f"ssh://git@platform/{last}", str(clone)],
                env=platform.env(), timeout=1800)))
    finally:
        platform.stop(everything=True)
        shutil.rmtree(root, ignore_errors=True)
    return rows


HEAD = ["action", "idle MB", "peak daemon", "peak daemon+git", "peak all descendants*",
        "after MB", "over idle", "seconds"]


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [HEAD, *rows]) for i in range(len(HEAD))]
    for row in [HEAD, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="30,200", help="MB of random data per push")
    parser.add_argument("--file-mb", type=int, default=50, help="MB per file (max_object_mb "
                        "is 100)")
    args = parser.parse_args(argv)
    rows = run([int(size) for size in args.sizes.split(",")], args.file_mb)
    print("peaks: sampled every 20 ms (the daemon's own also from VmHWM); "
          "'over idle' = daemon+git peak - idle; *builds, the router and dynos included")
    print_table(rows)


if __name__ == "__main__":
    main()
