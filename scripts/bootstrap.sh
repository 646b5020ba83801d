#!/usr/bin/env bash
# Makes sure Node >= 22.12 and pnpm 10 are on PATH. Source it: `. scripts/bootstrap.sh`.
# The machines ship Node 20; the npm registry's `node@22` package carries a real Node 22 binary, and
# corepack's signature check fails offline, so pnpm comes from the registry too. Both land in .tools/.
_kiln_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_kiln_tools="$_kiln_root/.tools"
_kiln_node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=12)?0:1)'
}
if ! _kiln_node_ok || ! command -v pnpm >/dev/null 2>&1 || ! pnpm --version 2>/dev/null | grep -q '^10\.'; then
  if [ ! -x "$_kiln_tools/node_modules/.bin/node" ] || [ ! -x "$_kiln_tools/node_modules/.bin/pnpm" ]; then
    echo "bootstrap: installing node@22 and pnpm@10 into $_kiln_tools" >&2
    mkdir -p "$_kiln_tools"
    # prefer-offline (also for the nested install node@22's installer runs): a machine whose npm cache
    # already holds these packages needs no registry round trips, which behind a slow or
    # certificate-rewriting proxy took minutes of retries.
    npm_config_prefer_offline=true npm install --prefix "$_kiln_tools" --no-audit --no-fund --loglevel=error node@22 pnpm@10 >&2
  fi
  export PATH="$_kiln_tools/node_modules/.bin:$PATH"
fi
_kiln_node_ok || { echo "bootstrap: Node >= 22.12 is required (found $(node --version 2>/dev/null))" >&2; return 1 2>/dev/null || exit 1; }
