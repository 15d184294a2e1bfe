#!/usr/bin/env bash
# `npm run test:e2e`: the webview test (Chromium required here, never skipped), then the packaged
# extension in a real VS Code (code-server). Installs the tools outside the repo on first run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/e2e-install.sh
VIT_LENS_REQUIRE_CHROMIUM=1 node scripts/run-tests.mjs test/unit/webview.test.ts
npm run package --silent
ls -l vit-lens.vsix | awk '{ printf "VSIX size: %.1f MB\n", $5 / 1048576 }'
node --import tsx --test --test-reporter=spec --test-timeout=480000 test/e2e/vscode.e2e.ts
