#!/usr/bin/env bash
# Installs Mesa's software Vulkan device (lavapipe) so the WebGPU tests have an adapter on a machine
# without a GPU. Bookworm's own Mesa 22.3 is refused by Dawn (it lacks
# shaderUniform*ArrayDynamicIndexing); Mesa 25 from bookworm-backports works. The backports suite is
# added as its own .sources file with the URIs and keyring of the main archive's stanza, so it comes
# from the same (possibly snapshot-pinned) mirror. Idempotent: a second run returns at once.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi

MAIN=/etc/apt/sources.list.d/debian.sources
BACKPORTS=/etc/apt/sources.list.d/vit-lens-bookworm-backports.sources

# Mesa's major version in the installed lavapipe, or 0 when absent.
mesa_major() {
  dpkg-query -W -f='${Status} ${Version}\n' mesa-vulkan-drivers 2>/dev/null \
    | awk '$3 == "installed" { split($4, v, "."); sub(/^[0-9]+:/, "", v[1]); print v[1]; exit } END { if (!NR) print 0 }'
}

if [ "$(mesa_major)" -ge 25 ] && dpkg -s libvulkan1 >/dev/null 2>&1; then
  echo "lavapipe ready (mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers))"
  exit 0
fi

if [ ! -f "$BACKPORTS" ]; then
  [ -f "$MAIN" ] || { echo "install-lavapipe: $MAIN not found; add bookworm-backports to the apt sources by hand" >&2; exit 1; }
  # The first stanza whose Suites include plain "bookworm": its URIs and Signed-By.
  read -r URIS KEYRING < <(awk '
    /^[[:space:]]*$/ { if (bookworm && uris) { print uris, key; done = 1; exit } uris = key = ""; bookworm = 0; next }
    /^URIs:/ { uris = $2 }
    /^Signed-By:/ { key = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") bookworm = 1 }
    END { if (!done && bookworm && uris) print uris, key }' "$MAIN")
  [ -n "${URIS:-}" ] || { echo "install-lavapipe: no bookworm stanza in $MAIN" >&2; exit 1; }
  {
    echo "Types: deb"
    echo "URIs: $URIS"
    echo "Suites: bookworm-backports"
    echo "Components: main"
    [ -n "${KEYRING:-}" ] && echo "Signed-By: $KEYRING"
  } | $SUDO tee "$BACKPORTS" >/dev/null
fi

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
[ "$(mesa_major)" -ge 25 ] || { echo "install-lavapipe: mesa-vulkan-drivers from bookworm-backports is older than 25" >&2; exit 1; }
echo "lavapipe installed (mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers))"
