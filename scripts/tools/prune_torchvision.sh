#!/bin/sh
# prune_torchvision.sh - scripts/prune.lua on the eight torchvision architectures the
# ONNX tests prove (resnet18, resnet50, mobilenet_v2, densenet121, squeezenet1_1,
# googlenet, regnet_x_400mf, mnasnet0_5; random weights, 3x64x64, batchnorm kept), to
# show what the generic recipe prunes and skips on each and the FLOPs it reaches.
# Their weights are random, so the accuracy column says nothing; the plan, the FLOPs
# and the ONNX files written are the point.
#
#   sh scripts/tools/prune_torchvision.sh [prune.lua options...]
#
# Fixtures: build/torchvision (tests/onnx/make_torchvision.py builds them when absent,
# as torchvision_spec.lua does; TORCHVISION=DIR to use others).  Data: without --data,
# Fashion-MNIST images (2000 to calibrate, 1000 to validate) repeated to 3 channels and
# zero-padded to 64x64 are written as .npy files into OUT.  Options given
# are passed to prune.lua (default --speedup 2 --images 200); each run's output goes
# to OUT/NAME.log (OUT=build/prune_torchvision), a summary to stdout.
set -e
LOPPER=${LOPPER:-build/lopper}
DIR=${TORCHVISION:-build/torchvision}
OUT=${OUT:-build/prune_torchvision}
PYTHON=/usr/bin/python3
NETS="resnet18 resnet50 mobilenet_v2 densenet121 squeezenet1_1 googlenet regnet_x_400mf mnasnet0_5"

if [ ! -f "$DIR/mnasnet0_5_bn.onnx" ]; then
    $PYTHON tests/onnx/make_torchvision.py "$DIR"
fi
mkdir -p "$OUT"

case " $* " in
*" --data "* | *" --data="*) DATA="" ;;
*)
    if [ ! -f "$OUT/fm3_val_labels.npy" ]; then
        $PYTHON - "$OUT" <<'EOF'
import gzip, sys
import numpy as np
out, src = sys.argv[1], "/usr/share/datasets/fashion-mnist/"
def read(name, offset, shape):
    return np.frombuffer(gzip.open(src + name).read(), np.uint8, offset=offset).reshape(shape)
for split, part, n in (("train", "train", 2000), ("t10k", "val", 1000)):
    x = read(split + "-images-idx3-ubyte.gz", 16, (-1, 28, 28))[:n]
    y = read(split + "-labels-idx1-ubyte.gz", 8, (-1,))[:n]
    img = np.zeros((n, 3, 64, 64), np.uint8)
    img[:, :, 18:46, 18:46] = x[:, None]
    np.save("%s/fm3_%s.npy" % (out, part), img)
    np.save("%s/fm3_%s_labels.npy" % (out, part), y.astype(np.int64))
EOF
    fi
    DATA="--data $OUT/fm3_train.npy --labels $OUT/fm3_train_labels.npy"
    DATA="$DATA --val $OUT/fm3_val.npy --val-labels $OUT/fm3_val_labels.npy"
    ;;
esac

for net in $NETS; do
    log="$OUT/$net.log"
    # shellcheck disable=SC2086  # DATA is a list of words
    if $LOPPER scripts/prune.lua --model "$DIR/${net}_bn.onnx" --speedup 2 --images 200 \
           $DATA "$@" --out "$OUT/$net.pruned.onnx" >"$log" 2>&1; then
        printf '%-16s %s %s FLOPs before, after, ratio: %s\n' "$net" \
            "$(grep -m1 '^pruned ' "$log" | tr -d :)," "$(grep -m1 '^skipped ' "$log" | tr -d :);" \
            "$(grep -m1 '^FLOPs ' "$log" | tr -s ' ' | cut -d' ' -f2-)"
    else
        printf '%-16s failed: %s\n' "$net" "$(tail -n 1 "$log")"
    fi
done
