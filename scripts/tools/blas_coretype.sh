#!/bin/sh
# blas_coretype.sh - print the OpenBLAS kernel family this CPU can run, for
# OPENBLAS_CORETYPE.  Debian 12's OpenBLAS (0.3.21) picks its kernels by CPU model
# number and falls back to the SSE3 "Prescott" kernels on models it does not know
# (virtual CPUs often report none), which makes sgemm 5-8x slower than the hardware
# allows.  Choosing by instruction-set flags instead is safe: the kernels named here
# only use instructions the flags promise.  Prints nothing when in doubt.
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
has() { case " $flags " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
if has avx512f && has avx512bw && has avx512dq && has avx512vl && has avx512cd; then
    echo SkylakeX
elif has avx2 && has fma; then
    echo Haswell
fi
