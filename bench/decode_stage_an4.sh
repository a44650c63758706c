#!/usr/bin/env bash
# Wall times issue 14 compares, on AN4, into a scratch folder (the recipe's own decode dirs
# stay as they are). Run on an idle machine after `make -C recipes/an4`:
#   bash bench/decode_stage_an4.sh [SYSTEMS...]        (default: mono tri1 dnn ctc)
# 1. The decode stage as the recipe runs it: per system one command, its dev grid (LMWT
#    7..17 x penalty 0/0.5/1; CTC 0.25..2) then test with dev's setting (--then), --nj 2.
# 2. One setting, one process, the whole command (Kaldi's gmm-latgen-faster on AN4 test:
#    mono 2.34 s, tri1 8.28 s): test decoded with the LMWT and penalty dev chose, the
#    median of 5 runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# A user's Python caches bytecode; some sandboxes turn that off, which adds ~0.4 s a command.
unset PYTHONDONTWRITEBYTECODE
ASR=.venv/bin/asr
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
systems=("${@:-mono tri1 dnn ctc}")
suffix() { [[ $1 == mono || $1 == tri* ]] && echo "" || echo "_fbank"; }
start=$EPOCHREALTIME
for sys in ${systems[@]}; do
  sweep=$([[ $sys == ctc* ]] && echo "0.25:2:0.25" || echo "7:17")
  t0=$EPOCHREALTIME
  $ASR decode --config recipes/an4/conf.toml exp/an4/$sys --data data/an4/dev$(suffix $sys) --dir $OUT/$sys/dev \
    --nj 2 --sweep $sweep --then data/an4/test$(suffix $sys):$OUT/$sys/test 2>/dev/null
  t1=$EPOCHREALTIME
  printf '%-6s dev grid + test %6.2f s   %s\n' "$sys" "$(awk "BEGIN{print $t1 - $t0}")" "$(head -1 $OUT/$sys/test/wer.txt)"
done
printf 'decode stage: %.1f s\n' "$(awk "BEGIN{print $EPOCHREALTIME - $start}")"
for sys in ${systems[@]}; do
  for i in 1 2 3 4 5; do
    t0=$EPOCHREALTIME
    $ASR decode --config recipes/an4/conf.toml exp/an4/$sys --data data/an4/test$(suffix $sys) --dir $OUT/$sys/one \
      --tune-on $OUT/$sys/dev 2>/dev/null
    awk "BEGIN{print $EPOCHREALTIME - $t0}"
  done | sort -n | awk -v s="$sys" '{a[NR]=$1} END{printf "%-6s one setting, one process: median %.2f s (min %.2f, max %.2f)\n", s, a[3], a[1], a[5]}'
  cmp -s <(cut -d' ' -f2- $OUT/$sys/one/hyp.txt) <(cut -d' ' -f2- $OUT/$sys/test/hyp.txt) \
    || echo "  (the one-process words differ from the --nj 2 decode's)"
done
