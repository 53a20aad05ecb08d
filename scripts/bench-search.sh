#!/usr/bin/env bash
# The search benchmark beside PostgreSQL's, in one run, on the same corpus and queries:
# the pg-fts baseline's deterministic generator (10M words by default) is run from
# ../shared/baselines/pg-fts (not part of this repository), then our engine (release
# build), then the same queries through a running appliance's HTTPS API (the corpus
# written into its storage, the index rebuilt from there at start), then the baseline
# itself. Results go in docs/BENCHMARKS.md by hand.
# usage: scripts/bench-search.sh [WORDS]
set -euo pipefail
cd "$(dirname "$0")/.."
WORDS=${1:-10000000}
PGFTS=${PGFTS:-../shared/baselines/pg-fts}
[ -x "$PGFTS/run.sh" ] || { echo "the PostgreSQL baseline is not at $PGFTS (set PGFTS)" >&2; exit 2; }
SCRATCH=/tmp/baselines
mkdir -p "$SCRATCH"
GEN=$WORDS-$(md5sum < "$PGFTS/gen_corpus.py" | cut -c1-8)
CORPUS=$SCRATCH/fts-corpus-$GEN.tsv QUERIES=$SCRATCH/fts-queries-$GEN.tsv
if [ ! -s "$CORPUS" ] || [ ! -s "$QUERIES" ]; then
  python3 "$PGFTS/gen_corpus.py" "$WORDS" "$CORPUS.tmp" "$QUERIES"
  mv "$CORPUS.tmp" "$CORPUS"
fi
cargo bench -p roomscribe-appliance --bench search -- "$CORPUS" "$QUERIES" "$SCRATCH/roomscribe-search-index"
rm -rf "$SCRATCH/roomscribe-search-index"
# The same queries through the HTTPS API of a running appliance (release binary).
cargo build --release -p roomscribe-appliance --bin roomscribe
cargo bench -p roomscribe-appliance --bench search_api -- "$CORPUS" "$QUERIES"
[ "${SKIP_PG:-0}" = 1 ] || "$PGFTS/run.sh" "$WORDS"
