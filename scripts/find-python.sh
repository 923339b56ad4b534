#!/usr/bin/env bash
# Print the path of a Python >= 3.12 that actually runs, or explain what to install.
# Order: $PYTHON, python3.13, python3.12, python3 (if new enough), then pyenv's installed versions.
# A pyenv shim that exists but is not active fails to run, so every candidate is executed, not just found.
set -u
ok() { "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
cands=()
[ -n "${PYTHON:-}" ] && cands+=("$PYTHON")
cands+=(python3.13 python3.12 python3)
root=""
if command -v pyenv >/dev/null 2>&1; then root=$(pyenv root 2>/dev/null); fi
[ -z "$root" ] && [ -d "$HOME/.pyenv" ] && root="$HOME/.pyenv"
if [ -n "$root" ] && [ -d "$root/versions" ]; then
  for v in $(ls -1 "$root/versions" | grep -E '^3\.(1[2-9]|[2-9][0-9])(\.[0-9]+)*$' | sort -t. -k1,1n -k2,2nr -k3,3nr); do
    cands+=("$root/versions/$v/bin/python3")
  done
fi
for c in "${cands[@]}"; do
  p=$(command -v "$c" 2>/dev/null) || continue
  if ok "$p"; then echo "$p"; exit 0; fi
done
cat >&2 <<'MSG'
soxbot needs Python 3.12 or newer (pandas-ta requires it), and none was found.
Install one, then run the command again:
  Debian/Ubuntu:  sudo apt-get install python3.12 python3.12-venv   (or python3.13)
  macOS:          brew install python@3.12
  pyenv:          pyenv install 3.12
Or point PYTHON at one:  make run PYTHON=/path/to/python3.12
MSG
exit 1
