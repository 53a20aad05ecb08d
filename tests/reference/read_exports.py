"""Reads a transcript's exports back with parsers nobody on this project wrote, and
prints what they found as one JSON object, for the end-to-end test to compare with
the transcript the API returns.

usage: read_exports.py SRT VTT CSV DOCX
  srt:  PyPI srt         -> [[start_ms, end_ms, content], ...]
  vtt:  PyPI webvtt-py   -> [[start_ms, end_ms, voice, text], ...]
  csv:  Python's csv     -> {"header": [...], "rows": [[...], ...]}
  docx: PyPI python-docx -> {"paragraphs": [text, ...], "footer": text}
"""
import csv
import json
import sys

import docx
import srt
import webvtt


def ms(td):
    return round(td.total_seconds() * 1000)


def vtt_ms(stamp):
    h, m, s = stamp.split(":")
    return round((int(h) * 3600 + int(m) * 60 + float(s)) * 1000)


def main(srt_path, vtt_path, csv_path, docx_path):
    with open(srt_path, encoding="utf-8") as f:
        subs = list(srt.parse(f.read(), ignore_errors=False))
    cues = webvtt.read(vtt_path)
    with open(csv_path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    document = docx.Document(docx_path)
    footer = document.sections[0].footer
    print(json.dumps({
        "docx": {
            "paragraphs": [p.text for p in document.paragraphs],
            "footer": footer.paragraphs[0].text if footer.paragraphs else "",
            "footer_xml": footer._element.xml,
        },
        "srt": [[ms(s.start), ms(s.end), s.content] for s in subs],
        "vtt": [[vtt_ms(c.start), vtt_ms(c.end), c.voice, c.text] for c in cues],
        "csv": {"header": rows[0], "rows": rows[1:]},
    }, ensure_ascii=False))


if __name__ == "__main__":
    main(*sys.argv[1:5])
