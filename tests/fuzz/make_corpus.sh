#!/bin/sh
# make_corpus.sh LOPPER DIR - the fuzzers' seed corpus, generated (nothing binary is
# committed): tiny nets Lopper builds and writes (seeds.lua: DIR/corpus_onnx/*.onnx,
# DIR/corpus_lop/*.lop), ONNX files in other exporters' shapes (onnx_seeds.py, with
# python3-onnx), and each .lop file's decompressed contents without its checksum
# (*.body), the form fuzz_modelfile.c mutates best; and small PNGs and JPEGs of every
# kind for fuzz_image (image_seeds.py, DIR/corpus_image).
set -eu
lopper=$1
dir=$2
rm -rf "$dir/corpus_onnx" "$dir/corpus_lop" "$dir/corpus_npy" \
    "$dir/corpus_image"
mkdir -p "$dir/corpus_onnx" "$dir/corpus_lop" "$dir/corpus_npy"
"$lopper" tests/fuzz/seeds.lua "$dir/corpus_onnx" "$dir/corpus_lop"
/usr/bin/python3 tests/fuzz/onnx_seeds.py "$dir/corpus_onnx"
/usr/bin/python3 tests/fuzz/npy_seeds.py "$dir/corpus_npy"   # .npy pairs numpy writes
for f in "$dir"/corpus_lop/*.lop; do
    gzip -dc "$f" | head -c -4 >"${f%.lop}.body"
done
/usr/bin/python3 tests/fuzz/image_seeds.py "$dir/corpus_image"
