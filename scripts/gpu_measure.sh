#!/usr/bin/env bash
# One call's worth of measurements on the GPU machine (README "Running on a GPU machine"), most
# important first, each step skipped once DEADLINE seconds (default 420) are near: diffusers
# (peer.py) and `deno task bench --peer` side by side at 512² (bench rows ROWS, default 8: the default configuration), the
# GEMM variants (scripts/gemm_bench.ts, where present), LCM 4 steps (a batch of 3: the 2nd and 3rd
# images are warm) with and without a rank-64 LoRA, img2img, 1024², and a cold first image from a
# synthetic f16 folder with the shader cache off (wall time unprofiled, then once more profiled). STEPS (default "peer bench gemm lcm img2img 1024
# cold") picks steps. Needs .device/ as the README says, plus .device/tok (vocab.json,
# merges.txt), .device/diffusers-src.tgz and .device/peer.py (from ../shared/reference). Writes
# $OUT/log.txt, peer.txt, bench.txt, bench1024.txt, gemm.txt.
set -u
L=$OUT/log.txt
T0=$(date +%s); DEADLINE=${DEADLINE:-420}; ROWS=${ROWS:-8}
STEPS=" ${STEPS:-peer bench gemm lcm img2img 1024 cold} "
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
step() { echo "=== +$(( $(date +%s) - T0 ))s $*" | tee -a $L; }
can() { [ "$(left)" -gt "$1" ] || { echo "--- skipped (only $(left) s left)" >> $L; return 1; }; }
want() { [[ "$STEPS" == *" $1 "* ]]; }
mkdir -p /tmp/py && tar xzf .device/diffusers-src.tgz -C /tmp
G="bash scripts/gpu_machine.sh"
SD="deno run -A --cached-only main.ts --model synth --tokenizer .device/tok"
export SD_CACHE=/tmp/sdcache
if want peer; then
  step peer 512
  PYTHONUNBUFFERED=1 timeout 120 python3 .device/peer.py .device/tok > $OUT/peer.txt 2>>$L; tail -1 $OUT/peer.txt >> $L
fi
if want bench; then
  step bench 512 rows $ROWS with peer and profile
  can 60 && timeout 200 $G deno run -A --cached-only scripts/bench.ts --only $ROWS --tokenizer .device/tok --peer $OUT/peer.txt --profile > $OUT/bench.txt 2>&1; tail -40 $OUT/bench.txt >> $L
fi
if want gemm && [ -f scripts/gemm_bench.ts ]; then
  step GEMM variants
  can 60 && timeout 90 $G deno run -A --cached-only scripts/gemm_bench.ts > $OUT/gemm.txt 2>&1; tail -40 $OUT/gemm.txt >> $L
fi
if want lcm; then
  step LCM 4 steps guidance 1, batch of 3
  can 30 && timeout 60 $G $SD "a cat" --seed 1 --batch 3 --scheduler lcm --steps 4 --guidance 1 -o /tmp/lcm >> $L 2>&1
  step LCM 4 steps + rank-64 LoRA, batch of 3, profiled
  can 40 && timeout 40 $G deno run -A --cached-only scripts/synth_lora.ts /tmp/lora64.safetensors --rank 64 >> $L 2>&1
  can 30 && timeout 60 $G $SD "a cat" --seed 1 --batch 3 --scheduler lcm --steps 4 --guidance 1 --lora /tmp/lora64.safetensors -o /tmp/lcm-lora >> $L 2>&1
  can 30 && timeout 60 $G $SD "a cat" --seed 1 --scheduler lcm --steps 4 --guidance 1 --lora /tmp/lora64.safetensors -o /tmp/lcm-lora1.png --profile >> $L 2>&1
fi
if want img2img; then
  step img2img 512 strength 1
  can 30 && timeout 60 $G $SD "a cat" --seed 1 --init-image /tmp/lcm/a-cat-1.png --strength 1 -o /tmp/o5.png --profile >> $L 2>&1
fi
if want 1024; then
  step bench 1024 row ${ROWS##*,}
  can 60 && timeout 100 $G deno run -A --cached-only scripts/bench.ts --only ${ROWS##*,} --size 1024 --tokenizer .device/tok > $OUT/bench1024.txt 2>&1; tail -12 $OUT/bench1024.txt >> $L
fi
if want cold && can 90; then
  step synth folder f16 + cold start
  timeout 80 $G deno run -A --cached-only scripts/synth.ts --out /tmp/sd15 --precision f16 --tokenizer .device/tok >> $L 2>&1
  export __GL_SHADER_DISK_CACHE=0
  can 25 && timeout 40 $G bash -c 's=$(date +%s%N); deno run -A --cached-only main.ts "a cat" --weights /tmp/sd15 --seed 1 -o /tmp/o1.png; echo "cold process wall: $(( ($(date +%s%N) - s) / 1000000 )) ms"' >> $L 2>&1
  can 25 && timeout 40 $G deno run -A --cached-only main.ts "a cat" --weights /tmp/sd15 --seed 1 -o /tmp/o2.png --profile >> $L 2>&1
fi
step done
