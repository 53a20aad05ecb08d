#!/usr/bin/env bash
# Makes a sample meeting recording: sentences spoken by espeak-ng in two voices
# (different pitch and speed), with pauses, as 16 kHz mono 16-bit WAV. Korean by
# default; SAMPLE_LANG=en makes it English (espeak-ng's en-us, a male and a female
# variant as the two speakers) and needs FILE (the demo's is
# tests/data/english-meeting.txt).
# Usage: scripts/make-sample.sh OUT.wav [SENTENCES | FILE]
#   SENTENCES: the first N of the built-in 8 (tests/data/korean-meeting.txt; default: all);
#   FILE: one sentence per line instead (e.g. tests/data/voice-commands.txt).
set -euo pipefail
out="$1"; count="${2:-8}"
lang="${SAMPLE_LANG:-ko}"
if [ -f "$count" ]; then
  mapfile -t sentences < <(grep -v '^[[:space:]]*$' "$count")
  count="${#sentences[@]}"
else
  # The built-in meeting (Korean).
  mapfile -t sentences < <(grep -v '^[[:space:]]*$' "$(dirname "$0")/../tests/data/korean-meeting.txt")
  sentences=("${sentences[@]:0:$count}")
fi
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
parts=()
for i in $(seq 0 $((count - 1))); do
  if [ "$lang" = en ]; then
    # Two speakers espeak-ng's English renders clearly enough for a small model.
    if (( i % 2 == 0 )); then voice=en-us+m1; pitch=40; speed=150; else voice=en-us+f2; pitch=50; speed=150; fi
  else
    voice=ko
    if (( i % 2 == 0 )); then pitch=35; speed=150; else pitch=70; speed=165; fi
  fi
  espeak-ng -v "$voice" -p "$pitch" -s "$speed" -w "$tmp/s$i.wav" "${sentences[$i]}"
  sox -R "$tmp/s$i.wav" -r 16000 -c 1 -b 16 "$tmp/p$i.wav" pad 0 1.2
  parts+=("$tmp/p$i.wav")
done
sox -R "${parts[@]}" -r 16000 -c 1 -b 16 "$out" pad 0.5 0.5
