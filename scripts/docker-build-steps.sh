#!/usr/bin/env bash
# The build steps of the Docker image, as one script that the Dockerfile runs and that
# test/scripts/docker-build-steps.test.ts runs too (no container engine is needed to test them):
#
#   deps SRC            npm ci in the source tree SRC
#   compile SRC         the README's `npm run build`, portable (no -march=native: the image may run on another
#                       CPU than the one that built it); the CUDA backend when nvcc and cuBLASLt are there, for
#                       KVSERVE_CUDA_ARCHS (default in cmake/cuda_archs.cmake)
#   build SRC OUT       compile, then assemble (deps is separate so that Docker caches node_modules)
#   assemble SRC OUT    the runtime layout in OUT: dist/, the addon, configs/, the demo model, production
#                       node_modules only, and this script with the health check
#   runtime-check OUT   OUT runs: every file there, the addon's shared libraries resolve, dev packages are
#                       gone, and `kvserve generate` answers on the CPU with the demo model
#   no-build-tools      no compiler or build tool on PATH (the image's runtime stage)
set -euo pipefail

die() { echo "docker-build-steps: $*" >&2; exit 1; }

# What the runtime needs, relative to the app folder; everything else stays in the build stage.
RUNTIME_FILES=(package.json package-lock.json dist build/Release/kvserve.node configs models/stories260K
               scripts/healthcheck.mjs scripts/docker-build-steps.sh)
DEV_ONLY_PACKAGES=(typescript vitest tsx cmake-js node-addon-api @types/node)
BUILD_TOOLS=(gcc g++ cc c++ clang clang++ make cmake ninja nvcc)

deps() {
  cd "$1"
  npm ci --no-audit --no-fund
}

compile() {
  cd "$1"
  KVSERVE_PORTABLE=ON npm run build
}

assemble() {
  local src out
  src=$(cd "$1" && pwd)
  mkdir -p "$2"
  out=$(cd "$2" && pwd)
  for f in "${RUNTIME_FILES[@]}"; do
    [ -e "$src/$f" ] || die "assemble: $src/$f is missing (run compile first)"
    mkdir -p "$out/$(dirname "$f")"
    cp -R "$src/$f" "$out/$f"
  done
  # Copied, then pruned offline: the runtime gets exactly the lock file's production packages.
  mkdir -p "$out/node_modules"
  cp -R "$src/node_modules/." "$out/node_modules/"
  (cd "$out" && npm prune --omit=dev --no-audit --no-fund >/dev/null)
  find "$out/node_modules" -mindepth 1 -maxdepth 1 -type d -empty -delete  # scopes emptied by the prune
}

runtime_check() {
  local app
  app=$(cd "$1" && pwd)
  for f in "${RUNTIME_FILES[@]}"; do
    [ -e "$app/$f" ] || die "runtime-check: $app/$f is missing"
  done
  local missing
  missing=$(ldd "$app/build/Release/kvserve.node" | grep 'not found' || true)
  [ -z "$missing" ] || die "runtime-check: the addon's shared libraries do not resolve: $missing"
  for p in "${DEV_ONLY_PACKAGES[@]}"; do
    [ ! -e "$app/node_modules/$p" ] || die "runtime-check: dev-only package $p is in node_modules"
  done
  local out
  out=$(cd "$app" && node dist/cli.js generate --prompt 'Once upon a time' --max-tokens 8 --temperature 0 \
          --device cpu --json --quiet) || die "runtime-check: kvserve generate failed"
  case "$out" in
    *'"output_ids":['[0-9]*) ;;
    *) die "runtime-check: kvserve generate printed no tokens: $out" ;;
  esac
  echo "docker-build-steps: runtime-check ok ($app)"
}

no_build_tools() {
  local found=()
  for t in "${BUILD_TOOLS[@]}"; do
    if command -v "$t" >/dev/null 2>&1; then found+=("$t ($(command -v "$t"))"); fi
  done
  [ ${#found[@]} -eq 0 ] || die "no-build-tools: found ${found[*]}"
  echo "docker-build-steps: no build tools on PATH"
}

case "${1:-}" in
  deps) [ $# -eq 2 ] || die "usage: $0 deps SRC"; deps "$2" ;;
  compile) [ $# -eq 2 ] || die "usage: $0 compile SRC"; compile "$2" ;;
  build) [ $# -eq 3 ] || die "usage: $0 build SRC OUT"; (compile "$2") && assemble "$2" "$3" ;;
  assemble) [ $# -eq 3 ] || die "usage: $0 assemble SRC OUT"; assemble "$2" "$3" ;;
  runtime-check) [ $# -eq 2 ] || die "usage: $0 runtime-check APP"; runtime_check "$2" ;;
  no-build-tools) [ $# -eq 1 ] || die "usage: $0 no-build-tools"; no_build_tools ;;
  *) die "usage: $0 deps SRC | compile SRC | build SRC OUT | assemble SRC OUT | runtime-check APP | no-build-tools" ;;
esac
