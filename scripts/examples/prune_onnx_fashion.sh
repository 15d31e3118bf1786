#!/bin/sh
# prune_onnx_fashion.sh - the whole way of a user's own model through Lopper, end to
# end: a small CNN trained with Debian's PyTorch (train_fashion_cnn.py, about 3
# minutes; its weights are made here, never committed), exported to ONNX, pruned 2x in
# FLOPs by scripts/prune.lua with Fashion-MNIST given as an image folder of PNGs
# (scripts/tools/write_image_folder.py), one epoch of fine-tuning, written as ONNX
# again, and both models evaluated in ONNX Runtime against Lopper's own figures
# (scripts/tools/ort_accuracy.lua).  Files go to OUT (build/example); steps whose
# output is there already are not redone (delete OUT to start afresh).
#
#   sh scripts/examples/prune_onnx_fashion.sh [extra prune.lua options]
set -eu
OUT=${OUT:-build/example}
LOPPER=${LOPPER:-build/lopper}
PYTHON=/usr/bin/python3
NORM="--mean 0.2860 --std 0.3530"   # what train_fashion_cnn.py normalised with
mkdir -p "$OUT"

if [ ! -f "$OUT/cnn.onnx" ]; then
    echo "== training the user's model with PyTorch"
    $PYTHON scripts/examples/train_fashion_cnn.py --out "$OUT/cnn.onnx"
fi
for split in train test; do
    if [ ! -d "$OUT/$split" ]; then
        echo "== writing Fashion-MNIST $split as an image folder of PNGs"
        rm -rf "$OUT/$split.partial"
        $PYTHON scripts/tools/write_image_folder.py "$OUT/$split.partial" --split $split
        mv "$OUT/$split.partial" "$OUT/$split"
    fi
done

echo "== pruning 2x with scripts/prune.lua"
$LOPPER scripts/prune.lua --model "$OUT/cnn.onnx" --data "$OUT/train" --val "$OUT/test" \
    $NORM --speedup 2 --epochs 1 --out "$OUT/cnn.pruned.onnx" "$@"

echo "== both models in ONNX Runtime and in Lopper"
$LOPPER scripts/tools/ort_accuracy.lua "$OUT/cnn.onnx" --data "$OUT/test" $NORM
$LOPPER scripts/tools/ort_accuracy.lua "$OUT/cnn.pruned.onnx" --data "$OUT/test" $NORM
