#!/usr/bin/env bash
# Installs what the editor tests need beyond Python packages, idempotently:
# Emacs 28 + eglot from Debian (the Emacs tests), the VS Code test tools
# (tests/editors/vscode/setup.sh: Chromium, Node 24, code-server, playwright-core),
# and the compiled and packaged VS Code extension.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
if ! command -v emacs >/dev/null || ! ls -d /usr/share/emacs/site-lisp/elpa/eglot-* >/dev/null 2>&1; then
    "${sudo_cmd[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q emacs-nox elpa-eglot
fi

bash "$root/tests/editors/vscode/setup.sh"

cd "$root/editor-configs/vscode"
npm run compile --silent
npm run package --silent
