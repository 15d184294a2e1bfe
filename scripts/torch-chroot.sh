#!/usr/bin/env bash
# Another Debian's python3-torch for the --backend torch tests, on this machine: a debootstrap chroot
# at /srv/SUITE and a wrapper /usr/local/bin/python-SUITE that runs its python3 in the caller's
# directory (/proc, /sys, /dev, /tmp and /work bind-mounted, the host's /etc/hosts for the rendezvous).
#   sudo bash scripts/torch-chroot.sh trixie     # torch 2.6, Python 3.13
#   sudo bash scripts/torch-chroot.sh forky      # Debian testing: torch 2.14, Python 3.14 (Dec 2026)
#   VIT_LENS_TEST_PYTHON=/usr/local/bin/python-trixie node scripts/run-tests.mjs test/integration/trainTorch.test.ts
# Needs root, debootstrap and about 1.5 GB; mounts are not kept across reboots (run it again).
set -euo pipefail
suite=${1:?usage: torch-chroot.sh SUITE (trixie, forky, sid)}
root=/srv/$suite
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap
# An older debootstrap may not know a newer suite's name yet; they all use sid's script.
[ -e "/usr/share/debootstrap/scripts/$suite" ] || ln -s sid "/usr/share/debootstrap/scripts/$suite"
[ -x "$root/usr/bin/python3" ] ||
  debootstrap --variant=minbase --include=python3-torch,python3-numpy "$suite" "$root" http://deb.debian.org/debian
cp /etc/hosts "$root/etc/hosts"
for m in proc sys dev dev/shm tmp work; do
  [ -d "/$m" ] || continue
  mkdir -p "$root/$m"
  mountpoint -q "$root/$m" || mount --bind "/$m" "$root/$m"
done
cat > "/usr/local/bin/python-$suite" <<WRAPPER
#!/bin/sh
# python3 of the Debian $suite chroot at $root, in the caller's directory (scripts/torch-chroot.sh).
exec chroot $root /bin/sh -c 'cd "\$0" && exec /usr/bin/python3 "\$@"' "\$PWD" "\$@"
WRAPPER
chmod +x "/usr/local/bin/python-$suite"
"/usr/local/bin/python-$suite" -c 'import sys, torch; print("python-'"$suite"': torch", torch.__version__, "Python", sys.version.split()[0])'
