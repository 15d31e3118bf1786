#!/bin/sh
# run_tests.sh - run every test given - C programs with cmocka's TAP output, Lua spec
# files run by busted through the lopper executable ($LOPPER, with $BUSTED_FLAGS),
# and shell scripts that print TAP lines themselves (tests/fuzz/run_fuzz.sh) - and end
# with one summary line "N passed, N failed, N skipped", after the failed cases listed
# again with the first lines of their reasons (a CI log's tail then names them).  Each
# file's wall time follows its output, to show where the suite's minutes go.  A
# program that crashes or exits non-zero without reporting a failed case counts as one
# failure, listed with the last lines it printed, so nothing fails silently.
# The engine runs OpenBLAS single-threaded inside its own threads; the threads OpenBLAS
# starts in its constructor would otherwise spin through the first 0.1 s of every test
# program (2^28 cycles), processor time that test_loader's "nobody spins" check counts
# against the loader (0.12 s on a 2.0 GHz machine, where it failed).
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
passed=0
failed=0
skipped=0
failures=""
for t in "$@"; do
    name=$(basename "$t")
    start=$(date +%s)
    case "$t" in
    *.lua) out=$("$LOPPER" /usr/bin/busted -o TAP $BUSTED_FLAGS "$t" 2>&1) ;;
    *.sh) out=$(sh "$t" 2>&1) ;;
    *) out=$(CMOCKA_MESSAGE_OUTPUT=TAP "$t" 2>&1) ;;
    esac
    rc=$?
    printf '%s\n' "$out" | sed "s/^/[$name] /"
    echo "[$name] took $(($(date +%s) - start)) s"
    skip=$(printf '%s\n' "$out" | grep -c '^\(not \)\{0,1\}ok .*# SKIP')
    ok=$(printf '%s\n' "$out" | grep '^ok ' | grep -vc '# SKIP')
    bad=$(printf '%s\n' "$out" | grep '^not ok ' | grep -vc '# SKIP')
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
        echo "[$name] exited with status $rc"
        bad=1
        failures="$failures[$name] exited with status $rc; its last lines:
$(printf '%s\n' "$out" | tail -n 12 | sed "s/^/[$name]   /")
"
    fi
    failures="$failures$(printf '%s\n' "$out" | awk -v n="[$name] " '
        /^not ok / && !/# SKIP/ { print n $0; more = 8; next }
        more > 0 && /^#/ { print n $0; more--; next }
        { more = 0 }')
"
    passed=$((passed + ok))
    failed=$((failed + bad))
    skipped=$((skipped + skip))
done
if [ "$failed" -ne 0 ]; then
    echo "failed:"
    printf '%s' "$failures" | grep -v '^$'
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
