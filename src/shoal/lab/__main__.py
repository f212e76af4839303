"""`python -m shoal.lab up|down|ls`: what `shoal cluster` runs (the CLI itself only speaks
HTTP to daemons, so it hands this work to a process of its own)."""

from __future__ import annotations

import argparse
import os
import sys

from shoal import lab


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="shoal cluster", description="a multi-host cluster on this machine")
    sub = p.add_subparsers(dest="verb", required=True)
    up = sub.add_parser("up", help="start a cluster and print each host's DOCKER_HOST")
    up.add_argument("--hosts", type=int, default=3)
    up.add_argument("--name", default="shl")
    up.add_argument("--import", dest="image", default="", metavar="TAR",
                    help="import this rootfs tarball as busybox:latest on every host")
    down = sub.add_parser("down", help="remove a cluster and everything it made")
    down.add_argument("--name", default="shl")
    sub.add_parser("ls", help="list clusters")
    args = p.parse_args(argv)
    if args.verb != "ls" and os.geteuid() != 0:
        print("shoal cluster makes network namespaces: run it as root", file=sys.stderr)
        return 1
    try:
        if args.verb == "up":
            made = lab.up(args.name, args.hosts, progress=lambda line: print(line, file=sys.stderr))
            if args.image:
                lab.import_image(made, args.image)
            print(f"cluster {made.name}: {len(made.hosts)} hosts, store {made.store_url}")
            for h in made.hosts:
                print(f"{h.name}\t{h.ip}\tDOCKER_HOST={h.docker_host}")
        elif args.verb == "down":
            lab.down(args.name)
            print(f"cluster {args.name} removed")
        else:
            print("NAME\tHOSTS\tSTORE")
            for made in lab.labs():
                print(f"{made.name}\t{len(made.hosts)}\t{made.store_url}")
    except lab.LabError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
