#!/bin/sh
# run_tests.sh - run every test program given, each with cmocka's TAP output, and end
# with one summary line "N passed, N failed".  A program that crashes or exits non-zero
# without reporting a failed case counts as one failure, so nothing fails silently.
passed=0
failed=0
for t in "$@"; do
    name=$(basename "$t")
    out=$(CMOCKA_MESSAGE_OUTPUT=TAP "$t" 2>&1)
    rc=$?
    printf '%s\n' "$out" | sed "s/^/[$name] /"
    ok=$(printf '%s\n' "$out" | grep -c '^ok ')
    bad=$(printf '%s\n' "$out" | grep -c '^not ok ')
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
        echo "[$name] exited with status $rc"
        bad=1
    fi
    passed=$((passed + ok))
    failed=$((failed + bad))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
