#!/bin/sh
# run_fuzz.sh - the short fuzzing run of `make test` (docs/tests.md): each libFuzzer
# harness of build/fuzz (`make fuzz`) for FUZZ_SECONDS seconds (default 20; 0 skips),
# starting from the generated seeds (corpus_*) and what earlier runs found (grown_*,
# which keeps growing).  One TAP line per harness, as tests/run_tests.sh counts them;
# a crash, leak, sanitizer report, timeout (10 s for one input), memory blow-up (1 GB)
# or single allocation over 128 MB (inputs are at most 4 kB: a reader asking for that
# much trusts a declared size) is "not ok" with the reproducer's path and the report's
# first lines, and the script then exits non-zero.  Reproduce with:
# FUZZ_VERBOSE=1 build/fuzz/fuzz_onnx <file>.
set -u
dir=${FUZZ_DIR:-build/fuzz}
secs=${FUZZ_SECONDS:-20}
n=0
failed=0
for h in onnx modelfile npy image; do
    n=$((n + 1))
    case $h in
    onnx) corpus=$dir/corpus_onnx dict=tests/fuzz/onnx.dict ;;
    modelfile) corpus=$dir/corpus_lop dict=tests/fuzz/lop.dict ;;
    npy) corpus=$dir/corpus_npy dict=tests/fuzz/npy.dict ;;
    image) corpus=$dir/corpus_image dict=tests/fuzz/image.dict ;;
    esac
    if [ "$secs" -eq 0 ]; then
        echo "ok $n - fuzz_$h # SKIP FUZZ_SECONDS=0 (make test SANITIZE=1: make test runs the same binaries)"
        continue
    fi
    log=$dir/fuzz_$h.log
    mkdir -p "$dir/grown_$h" "$dir/crashes"
    "$dir/fuzz_$h" -max_total_time="$secs" -runs="${FUZZ_RUNS:--1}" -timeout=10 \
        -rss_limit_mb=1024 -malloc_limit_mb=128 -max_len=4096 -print_final_stats=1 \
        -dict="$dict" -artifact_prefix="$dir/crashes/$h-" "$dir/grown_$h" "$corpus" \
        >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' "$log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        echo "ok $n - fuzz_$h $secs s, ${runs:-?} runs, ${cov:-no coverage line}, no crash"
    else
        unit=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        echo "not ok $n - fuzz_$h failed (status $rc) after ${runs:-?} runs: reproducer" \
            "${unit:-none written}, log $log"
        grep -m 12 -E 'ERROR|BUG|SUMMARY|runtime error|#[0-9]+ 0x' "$log" | sed 's/^/# /'
        failed=1
    fi
done
exit $failed
