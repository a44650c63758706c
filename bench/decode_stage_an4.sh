#!/usr/bin/env bash
# Wall time of AN4's decode stage, the figure issue 14 compares (Kaldi-style: each system's
# dev grid, LMWT 7..17 x penalty 0/0.5/1 (CTC 0.25..2), then test once with dev's setting),
# into a scratch folder so the recipe's own decode dirs stay as they are. Run on an idle
# machine after `make -C recipes/an4`:  bash bench/decode_stage_an4.sh [SYSTEMS...]
set -euo pipefail
cd "$(dirname "$0")/.."
ASR=.venv/bin/asr
OUT=$(mktemp -d)
systems=("${@:-mono tri1 dnn ctc}")
start=$EPOCHREALTIME
for sys in ${systems[@]}; do
  suffix=$([[ $sys == mono || $sys == tri* ]] && echo "" || echo "_fbank")
  sweep=$([[ $sys == ctc* ]] && echo "0.25:2:0.25" || echo "7:17")
  t0=$EPOCHREALTIME
  $ASR decode --config recipes/an4/conf.toml exp/an4/$sys --data data/an4/dev$suffix --dir $OUT/$sys/dev --nj 2 --sweep $sweep 2>/dev/null
  t1=$EPOCHREALTIME
  $ASR decode --config recipes/an4/conf.toml exp/an4/$sys --data data/an4/test$suffix --dir $OUT/$sys/test --tune-on $OUT/$sys/dev 2>/dev/null
  t2=$EPOCHREALTIME
  printf '%-6s dev grid %6.2f s   test (one setting, one process) %6.2f s   %s\n' "$sys" \
    "$(awk "BEGIN{print $t1 - $t0}")" "$(awk "BEGIN{print $t2 - $t1}")" "$(head -1 $OUT/$sys/test/wer.txt)"
done
printf 'decode stage: %.1f s\n' "$(awk "BEGIN{print $EPOCHREALTIME - $start}")"
rm -rf "$OUT"
