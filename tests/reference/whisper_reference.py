"""Independent Whisper reference: Python faster-whisper on the same CTranslate2 model.

Used by the tests (front end and transcripts) and by the Whisper benchmark (speed,
memory). Run with the reference venv that scripts/setup.sh creates.

  whisper_reference.py features WAV OUT       log-mel of WAV as float32 (n_mels x frames),
                                              exactly as faster-whisper computes it
  whisper_reference.py transcribe MODEL WAV... one JSON line per file: text, audio and
        [--compute int8|float32] [--threads N] decode seconds; then a summary line with
        [--beam N]                             the peak RSS (MiB)
"""

import argparse
import json
import resource
import sys
import time
import wave

import numpy as np


def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            sys.exit(f"{path}: need 16 kHz mono 16-bit")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def features(args):
    from faster_whisper.feature_extractor import FeatureExtractor

    mel = FeatureExtractor(feature_size=args.n_mels)(read_wav(args.wav))
    np.ascontiguousarray(mel, dtype="<f4").tofile(args.out)
    print(json.dumps({"n_mels": int(mel.shape[0]), "frames": int(mel.shape[1])}))


def transcribe(args):
    from faster_whisper import WhisperModel

    model = WhisperModel(
        args.model, device="cpu", compute_type=args.compute, cpu_threads=args.threads
    )
    for path in args.wav:
        audio = read_wav(path)
        started = time.perf_counter()
        segments, _info = model.transcribe(
            audio,
            language="en",
            beam_size=args.beam,
            without_timestamps=True,
            condition_on_previous_text=True,
            temperature=0.0,
            vad_filter=False,
        )
        text = " ".join(s.text.strip() for s in segments)
        took = time.perf_counter() - started
        print(
            json.dumps(
                {
                    "file": path,
                    "text": text,
                    "audio_s": len(audio) / 16000.0,
                    "decode_s": took,
                }
            ),
            flush=True,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"peak_rss_mib": peak}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("features")
    f.add_argument("wav")
    f.add_argument("out")
    f.add_argument("--n-mels", type=int, default=80)
    t = sub.add_parser("transcribe")
    t.add_argument("model")
    t.add_argument("wav", nargs="+")
    t.add_argument("--compute", default="int8")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--beam", type=int, default=5)
    args = p.parse_args()
    {"features": features, "transcribe": transcribe}[args.cmd](args)


if __name__ == "__main__":
    main()
