#!/usr/bin/env bash
# Four GPUs: fault injection. For every fault kind (crash, exit, freeze, nccl-error) x phase
# (setup, forward, backward), rank $CULPRIT of a 4-rank bench-gpu job fails (DCP_FAULT); we assert
#   * every surviving rank exits non-zero within TIMEOUT + 5 s of the fault,
#   * some surviving rank names the culprit ("rank 2 stopped responding" / "rank 2 exited"),
#   * afterwards a clean rerun on the same GPUs succeeds and no process of ours is left on a GPU.
# MODES: "env" starts the ranks by hand with torchrun-style variables (RANK, WORLD_SIZE,
# MASTER_ADDR, ...: nobody kills the survivors for us), "launch" runs them under `dcp launch`.
# Prints a table; writes $OUT/x4_faults.json and the logs under $OUT/x4_faults/.
#
#   DCP=target/release/dcp OUT=/tmp/out bash bench/gpu/x4_faults.sh
#   knobs: MODES="env launch" KINDS=... PHASES=... TIMEOUT=20 CULPRIT=2 REPEAT=3 CLEAN_EACH=1
#          EXTERNAL=1 STOP_AFTER=25 (first case: rank $CULPRIT SIGSTOPped from outside, no DCP_FAULT)
# Time: each case is a job start (CUDA, NVRTC, NCCL init) plus the fault's detection (freeze:
# half the timeout) plus a clean rerun; budget ~30-60 s a case, 13 cases per mode. Under a
# 10-minute limit per command, split it: KINDS="crash exit" ..., then EXTERNAL=0 KINDS="freeze
# nccl-error" ..., then MODES=launch EXTERNAL=0 ...
set -u
source bench/gpu/env.sh
OUT=${OUT:-/tmp/x4_faults_out}
LOGS=$OUT/x4_faults
mkdir -p "$LOGS"
WORLD=${WORLD:-4}
TIMEOUT=${TIMEOUT:-20}
SLACK=${SLACK:-5}
CULPRIT=${CULPRIT:-2}
REPEAT=${REPEAT:-3}
MODES=${MODES:-env}
KINDS=${KINDS:-crash exit freeze nccl-error}
PHASES=${PHASES:-setup forward backward}
CLEAN_EACH=${CLEAN_EACH:-1}
# Startup (CUDA init, NVRTC compile, NCCL init) happens before the fault in forward/backward
# cases: give the whole job this long before calling it hung.
STARTUP=${STARTUP:-120}
# A workload long enough that forward run $REPEAT and backward run $REPEAT both happen.
WORK=${WORK:---dataset longalign --count 1 --mask causal --planners zigzag --warmup 1 --repeats 20}
CLEAN=${CLEAN:---dataset longalign --count 1 --mask causal --planners zigzag --warmup 0 --repeats 1}
PORT0=$(( 20000 + (RANDOM % 20000) ))
CASE=0
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -4
echo "dcp: $DCP  world $WORLD  timeout ${TIMEOUT}s (+${SLACK}s)  culprit rank $CULPRIT  repeat $REPEAT"

now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
fle() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# Our GPU processes still alive (by the PIDs we started only).
leftover() {
  local apps p out=""
  apps=$(timeout 20 nvidia-smi --query-compute-apps=pid --format=csv,noheader 2>/dev/null | tr -d ' ')
  for p in "$@"; do
    if kill -0 "$p" 2>/dev/null || grep -qx "$p" <<<"$apps"; then out="$out $p"; fi
  done
  echo "$out"
}

# Starts $WORLD ranks by hand; waits for them; sets EXITS[r], ETIME[r], FAULT_AT, PIDS.
# With STOP_AT=S set, the script itself SIGSTOPs rank $CULPRIT S seconds after the start (the
# issue's case: a rank frozen from outside, no DCP_FAULT).
run_env() {  # $1 = log prefix, $2 = DCP_FAULT value ('' for none), $3... = bench-gpu args
  local pre=$1 fault=$2 faulty=0; shift 2
  { [ -n "$fault" ] || [ -n "${STOP_AT:-}" ]; } && faulty=1
  local port=$(( PORT0 + CASE )) r start
  CASE=$((CASE + 1))
  PIDS=(); EXITS=(); ETIME=(); FAULT_AT=""
  start=$(now)
  for ((r = 0; r < WORLD; r++)); do
    RANK=$r LOCAL_RANK=$r WORLD_SIZE=$WORLD MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      DCP_FAULT=$fault $DCP bench-gpu --timeout-s "$TIMEOUT" "$@" >"$pre.rank$r.log" 2>&1 &
    PIDS[$r]=$!
  done
  local left=$WORLD hard=$(awk -v s="$start" -v t="$STARTUP" -v o="$TIMEOUT" 'BEGIN { printf "%.3f", s + t + o + 60 }')
  while ((left > 0)); do
    [ -z "$FAULT_AT" ] && grep -q "injected fault" "$pre.rank$CULPRIT.log" 2>/dev/null && FAULT_AT=$(now)
    if [ -n "${STOP_AT:-}" ] && [ -z "$FAULT_AT" ] && [ -z "${EXITS[$CULPRIT]:-}" ] && \
        ! fle "$(now)" "$(awk -v s="$start" -v t="$STOP_AT" 'BEGIN { printf "%.3f", s + t }')"; then
      kill -STOP "${PIDS[$CULPRIT]}" 2>/dev/null && FAULT_AT=$(now)
    fi
    for ((r = 0; r < WORLD; r++)); do
      [ -n "${EXITS[$r]:-}" ] && continue
      if ! kill -0 "${PIDS[$r]}" 2>/dev/null; then
        wait "${PIDS[$r]}"; EXITS[$r]=$?; ETIME[$r]=$(now); left=$((left - 1))
      fi
    done
    # A frozen culprit never exits: once every other rank is gone (or the bound passed), kill it.
    local others=0
    for ((r = 0; r < WORLD; r++)); do [ "$r" != "$CULPRIT" ] && [ -z "${EXITS[$r]:-}" ] && others=$((others + 1)); done
    if ((faulty)) && [ -z "${EXITS[$CULPRIT]:-}" ] && { ((others == 0)) || \
        { [ -n "$FAULT_AT" ] && ! fle "$(now)" "$(awk -v f="$FAULT_AT" -v t="$TIMEOUT" -v s="$SLACK" 'BEGIN { printf "%.3f", f + t + s + 10 }')"; }; }; then
      kill -CONT "${PIDS[$CULPRIT]}" 2>/dev/null; kill -KILL "${PIDS[$CULPRIT]}" 2>/dev/null
    fi
    if ! fle "$(now)" "$hard"; then  # the whole job hung: stop everything we started
      for ((r = 0; r < WORLD; r++)); do
        [ -z "${EXITS[$r]:-}" ] && { kill -CONT "${PIDS[$r]}" 2>/dev/null; kill -KILL "${PIDS[$r]}" 2>/dev/null; }
      done
    fi
    sleep 0.1
  done
}

# Runs the ranks under `dcp launch`; sets EXITS[0] (launch's status), ETIME[0], FAULT_AT, PIDS.
run_launch() {
  local pre=$1 fault=$2; shift 2
  local port=$(( PORT0 + CASE )) start hard pid
  CASE=$((CASE + 1))
  PIDS=(); EXITS=(); ETIME=(); FAULT_AT=""
  start=$(now)
  DCP_FAULT=$fault $DCP launch -n "$WORLD" --port "$port" -- bench-gpu --timeout-s "$TIMEOUT" "$@" >"$pre.launch.log" 2>&1 &
  pid=$!; PIDS[0]=$pid
  hard=$(awk -v s="$start" -v t="$STARTUP" -v o="$TIMEOUT" 'BEGIN { printf "%.3f", s + t + o + 60 }')
  while kill -0 "$pid" 2>/dev/null; do
    [ -z "$FAULT_AT" ] && grep -q "injected fault" "$pre.launch.log" 2>/dev/null && FAULT_AT=$(now)
    if ! fle "$(now)" "$hard"; then kill -TERM "$pid" 2>/dev/null; sleep 2; kill -KILL "$pid" 2>/dev/null; fi
    sleep 0.1
  done
  wait "$pid"; EXITS[0]=$?; ETIME[0]=$(now)
}

ROWS=()
JSON="["
SEP=""
record() {  # mode kind phase pass worst named exits clean note
  ROWS+=("$(printf '%-7s %-11s %-9s %-5s %9s %-6s %-16s %-6s %s' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9")")
  JSON="$JSON$SEP{\"mode\":\"$1\",\"kind\":\"$2\",\"phase\":\"$3\",\"pass\":$([ "$4" = ok ] && echo true || echo false),\"worst_exit_after_fault_s\":\"$5\",\"culprit_named\":$([ "$6" = yes ] && echo true || echo false),\"exits\":\"$7\",\"clean_rerun\":\"$8\",\"note\":\"$9\",\"timeout_s\":$TIMEOUT,\"bound_s\":$((TIMEOUT + SLACK)),\"culprit\":$CULPRIT,\"repeat\":$REPEAT,\"world\":$WORLD}"
  SEP=","
}

clean_rerun() {  # $1 = log prefix; sets CLEAN_RESULT to ok / FAIL...
  run_env "$1.clean" "" $CLEAN
  local r bad=0 lo
  for ((r = 0; r < WORLD; r++)); do [ "${EXITS[$r]}" = 0 ] || bad=1; done
  lo=$(leftover "${PIDS[@]}")
  [ -n "$lo" ] && bad=1
  if ((bad == 0)); then CLEAN_RESULT=ok; else CLEAN_RESULT="FAIL${lo:+(leftover$lo)}"; fi
}

# Judges a run_env case (survivors exited non-zero within the bound, culprit named) and the
# clean rerun; records the row.  $1 = log prefix, $2 $3 = kind, phase.
judge_env() {
  local pre=$1 r d pass=ok worst="-" named=no exits="" note="" clean="-"
  for ((r = 0; r < WORLD; r++)); do exits="$exits${exits:+,}${EXITS[$r]}"; done
  if [ -z "$FAULT_AT" ]; then pass=FAIL; note="fault never happened;"; fi
  for ((r = 0; r < WORLD; r++)); do
    [ "$r" = "$CULPRIT" ] && continue
    [ "${EXITS[$r]}" = 0 ] && { pass=FAIL; note="$note rank $r exited 0;"; }
    if [ -n "$FAULT_AT" ]; then
      d=$(fsub "${ETIME[$r]}" "$FAULT_AT")
      { [ "$worst" = "-" ] || fle "$worst" "$d"; } && worst=$d
      fle "$d" "$((TIMEOUT + SLACK))" || { pass=FAIL; note="$note rank $r took ${d}s;"; }
    fi
    grep -Eq "rank $CULPRIT (stopped responding|exited)" "$pre.rank$r.log" && named=yes
  done
  [ "$named" = yes ] || { pass=FAIL; note="$note culprit not named;"; }
  if [ "$CLEAN_EACH" = 1 ]; then clean_rerun "$pre"; clean=$CLEAN_RESULT; [ "$clean" = ok ] || pass=FAIL; fi
  record env "$2" "$3" "$pass" "$worst" "$named" "$exits" "$clean" "$note"
  echo "${ROWS[-1]}"
  grep -h "dcp: rank" "$pre".rank*.log 2>/dev/null | head -4 | sed 's/^/    /'
}

# The issue's case first: plain variables, a long job, rank $CULPRIT SIGSTOPped from outside.
if [ "${EXTERNAL:-1}" = 1 ]; then
  pre="$LOGS/env.sigstop.external"
  STOP_AT=${STOP_AFTER:-25} run_env "$pre" "" ${EXT_WORK:---dataset longalign --count 1 --mask causal --planners zigzag --warmup 1 --repeats 100000}
  judge_env "$pre" sigstop external
fi

for mode in $MODES; do
  for kind in $KINDS; do
    for phase in $PHASES; do
      rep=$REPEAT; [ "$phase" = setup ] && rep=0
      fault="rank:$CULPRIT,kind:$kind,phase:$phase,repeat:$rep"
      pre="$LOGS/$mode.$kind.$phase"
      if [ "$mode" = env ]; then
        run_env "$pre" "$fault" $WORK
        judge_env "$pre" "$kind" "$phase"
        continue
      fi
      # Under `dcp launch`: launch's own exit is what the user waits for.
      note=""; pass=ok; worst="-"; named=no
      run_launch "$pre" "$fault" $WORK
      exits=${EXITS[0]}
      if [ -z "$FAULT_AT" ]; then pass=FAIL; note="fault never fired;"; else
        worst=$(fsub "${ETIME[0]}" "$FAULT_AT")
        # launch adds its --grace-s (5 s) before killing a frozen rank.
        fle "$worst" "$((TIMEOUT + SLACK + 5))" || { pass=FAIL; note="launch took ${worst}s;"; }
      fi
      [ "${EXITS[0]}" = 0 ] && { pass=FAIL; note="$note launch exited 0;"; }
      grep -Eq "\[rank [0-9]+\] dcp: rank [0-9]+: rank $CULPRIT (stopped responding|exited)" "$pre.launch.log" && named=yes
      # Crash/exit/nccl-error: launch itself names the culprit as the first to fail.
      [ "$kind" != freeze ] && grep -q "rank $CULPRIT failed first" "$pre.launch.log" && named=yes
      [ "$named" = yes ] || { pass=FAIL; note="$note culprit not named;"; }
      clean="-"
      if [ "$CLEAN_EACH" = 1 ]; then clean_rerun "$pre"; clean=$CLEAN_RESULT; [ "$clean" = ok ] || pass=FAIL; fi
      record "$mode" "$kind" "$phase" "$pass" "$worst" "$named" "$exits" "$clean" "$note"
      echo "${ROWS[-1]}"
      # The survivors' one-line reasons, for the log.
      grep -h "dcp: rank" "$pre.launch.log" 2>/dev/null | head -4 | sed 's/^/    /'
    done
  done
done
if [ "$CLEAN_EACH" != 1 ]; then
  clean_rerun "$LOGS/final"; final=$CLEAN_RESULT
  echo "final clean rerun: $final"
  JSON="$JSON$SEP{\"final_clean_rerun\":\"$final\"}"
fi
JSON="$JSON]"
echo "$JSON" >"$OUT/x4_faults.json"
echo
printf '%-7s %-11s %-9s %-5s %9s %-6s %-16s %-6s %s\n' mode kind phase pass "worst_s" named "exit codes" clean note
printf '%s\n' "${ROWS[@]}"
fails=$(printf '%s\n' "${ROWS[@]}" | awk '$4 != "ok"' | wc -l)
echo "$fails failing case(s); bound = timeout ${TIMEOUT}s + ${SLACK}s after the fault; JSON: $OUT/x4_faults.json"
[ "$fails" = 0 ]
