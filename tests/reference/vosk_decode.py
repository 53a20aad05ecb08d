"""Independent reference decode with Python's vosk bindings (the same libvosk build).

Usage: vosk_decode.py MODEL_DIR FILE.wav   (16 kHz mono 16-bit WAV)
Prints JSON: a list of segments, each a list of {"word","start","end","conf"}.
Feeds 4000-sample chunks, like the agent (chunking decides where utterances end).
"""
import json
import sys
import wave

import vosk

vosk.SetLogLevel(-1)
model = vosk.Model(sys.argv[1])
wf = wave.open(sys.argv[2], "rb")
assert wf.getframerate() == 16000 and wf.getnchannels() == 1 and wf.getsampwidth() == 2
rec = vosk.KaldiRecognizer(model, 16000)
rec.SetWords(True)
segments = []


def take(result):
    words = json.loads(result).get("result", [])
    if words:
        segments.append(words)


while True:
    data = wf.readframes(4000)
    if not data:
        break
    if rec.AcceptWaveform(data):
        take(rec.Result())
take(rec.FinalResult())
print(json.dumps(segments, ensure_ascii=False))
