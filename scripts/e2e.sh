#!/usr/bin/env bash
# `npm run test:e2e`: builds the VSIX, then the webview test (Chromium required here, never
# skipped), the extension against a stand-in `vscode` (activation cost, restricted mode), and the
# packaged extension in a real VS Code (code-server) driven by Playwright. Installs the browser and
# code-server outside the repo on first run (scripts/e2e-install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/e2e-install.sh
npm run package --silent
ls -l vit-lens.vsix | awk '{ printf "VSIX size: %.1f MB\n", $5 / 1048576 }'
VIT_LENS_REQUIRE_CHROMIUM=1 node scripts/run-tests.mjs test/unit/webview.test.ts test/unit/predictionsWebview.test.ts test/unit/dashboard.test.ts test/e2e/extensionHost.test.ts
node --import tsx --test --test-reporter=spec --test-timeout=900000 test/e2e/vscode.e2e.ts
node --import tsx --test --test-reporter=spec --test-timeout=600000 test/e2e/training.e2e.ts
node --import tsx --test --test-reporter=spec --test-timeout=900000 test/e2e/trainBackend.e2e.ts
node --import tsx --test --test-reporter=spec --test-timeout=600000 test/e2e/torchInterpreter.e2e.ts
