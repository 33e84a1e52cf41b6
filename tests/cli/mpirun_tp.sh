#!/usr/bin/env bash
# `tfx` as the TFX_TP_RANKS ranks (default 2) of one MPI job sharding each layer (--tp), for the
# shared checkers, which call it as they call tfx: every rank runs the command, rank 0 answers.
# TFX_TP_BIN is the tfx binary, MPIEXEC Open MPI's mpirun. One compute thread a rank: the ranks
# already share the machine's cores.
set -euo pipefail
ranks=${TFX_TP_RANKS:-2}
export OMP_NUM_THREADS=1
exec "$MPIEXEC" --oversubscribe --bind-to none -np "$ranks" "$TFX_TP_BIN" "$@" --tp "$ranks"
