#!/usr/bin/env bash
# Benchmark only (never part of `make test`): the Whisper benchmark
# (tests/benches/whisper.rs) once per CTranslate2 maths backend that can be built from
# the registries and Debian, each against faster-whisper in the same run:
#   ruy       what ships (built from CTranslate2's source; no JIT, no system library)
#   openblas  Debian's OpenBLAS for float32 products, Ruy for int8 (libopenblas-dev)
#   dnnl      oneDNN for both, built from the source the onednn-src crate carries
#             (its kernels are generated at run time, which the agent's systemd unit
#             forbids with MemoryDenyWriteExecute=yes, so it cannot ship as is)
# Each non-default backend builds in its own target directory (target/bench-<name>), so
# the normal build is untouched. Usage: scripts/bench-backends.sh [ruy] [openblas] [dnnl]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null

backends=("$@")
[ ${#backends[@]} -gt 0 ] || backends=(ruy openblas dnnl)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Word times are left out: the comparison is of the maths library.
export WHISPER_BENCH_WORD_TIMES=0
for b in "${backends[@]}"; do
  case "$b" in
    ruy)
      cargo bench -p roomscribe-tests --bench whisper
      ;;
    openblas)
      # libgfortran-12-dev: openblas-src links -lgfortran (Debian's OpenBLAS has LAPACK).
      if ! dpkg -s libopenblas-dev libgfortran-12-dev >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
          libopenblas-dev libgfortran-12-dev >/dev/null
      fi
      # ct2rs reads where cblas.h and libopenblas.a are from these (openblas-src's
      # `system` mode on Linux does not say).
      DEP_OPENBLAS_INCLUDE=/usr/include/x86_64-linux-gnu/openblas-pthread \
      DEP_OPENBLAS_LIBRARY=/usr/lib/x86_64-linux-gnu/openblas-pthread \
      CARGO_TARGET_DIR=target/bench-openblas \
        cargo bench -p roomscribe-tests --bench whisper --features roomscribe-agent/bench-openblas
      ;;
    dnnl)
      CARGO_TARGET_DIR=target/bench-dnnl \
        cargo bench -p roomscribe-tests --bench whisper --features roomscribe-agent/bench-dnnl
      ;;
    *)
      echo "unknown backend $b (ruy, openblas, dnnl)" >&2
      exit 2
      ;;
  esac
done
