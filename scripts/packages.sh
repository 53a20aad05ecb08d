#!/usr/bin/env bash
# Builds the .deb and .rpm packages into target/packages/ (`make packages`):
#   roomscribe        the appliance, one statically linked binary (glibc, crt-static)
#   roomscribe-agent  the agent with libvosk beside it (rpath), not the model
# Installs the packaging tools (cargo-deb, cargo-generate-rpm) on first use.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
CACHE="${ROOMSCRIBE_CACHE:-$HOME/.cache/roomscribe}"
TARGET=x86_64-unknown-linux-gnu
OUT="$ROOT/target/packages"
log() { printf '[packages] %s\n' "$*" >&2; }

for tool in cargo-deb cargo-generate-rpm; do
  if ! command -v "$tool" >/dev/null; then
    log "installing $tool (once)"
    cargo install --locked --quiet "$tool"
  fi
done

mkdir -p "$OUT"
# Packaged configuration: the commented examples, pointed at the FHS locations.
sed -e 's|^data_dir = "roomscribe-data"|data_dir = "/var/lib/roomscribe"|' \
  config/appliance.toml > "$OUT/appliance.toml"
sed -e 's|^state_dir = "agent-state"|state_dir = "/var/lib/roomscribe-agent"|' \
    -e 's|^model = ""|model = "/var/lib/roomscribe-agent/model"|' \
  config/agent.toml > "$OUT/agent.toml"
grep -q '^data_dir = "/var/lib/roomscribe"' "$OUT/appliance.toml"
grep -q '^model = "/var/lib/roomscribe-agent/model"' "$OUT/agent.toml"
cp "$CACHE/vosk-0.3.45/libvosk.so" "$OUT/libvosk.so"

log "building the static appliance"
# --target is required: with it, build scripts and proc-macros stay dynamic.
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --target "$TARGET" -p roomscribe-appliance
log "building the agent"
# Its rpath names only where the package puts libvosk, no build directory.
ROOMSCRIBE_PACKAGE_RPATH=1 \
  cargo build --release --locked --target "$TARGET" -p roomscribe-agent

# Stripped copies for the rpms (cargo-deb strips its own).
mkdir -p "$OUT/bin"
strip -o "$OUT/bin/roomscribe" "target/$TARGET/release/roomscribe"
strip -o "$OUT/bin/roomscribe-agent" "target/$TARGET/release/roomscribe-agent"
rm -f "$OUT"/*.deb "$OUT"/*.rpm
for dir in appliance agent; do
  # cargo-deb warns that the generated configs are not build outputs; they are not.
  cargo deb --no-build --target "$TARGET" --manifest-path "$dir/Cargo.toml" -o "$OUT/" 2>&1 \
    | grep -v "are detected as Cargo target dir" >&2 || true
  # cargo-generate-rpm's -p takes the crate's directory. Requirements are declared
  # in Cargo.toml (the appliance has none: it is static).
  cargo generate-rpm --target "$TARGET" -p "$dir" --auto-req disabled -o "$OUT/"
done
ls -l "$OUT"/*.deb "$OUT"/*.rpm >&2
