"""export_resnet18.py OUT.onnx - torchvision's ResNet-18 at 3x224x224 for the `make bench`
table: seeded random weights (nothing is downloaded) and randomised batchnorm, built as
tests/onnx/make_torchvision.py builds its fixtures, exported with batchnorm kept
(TrainingMode.PRESERVE, no constant folding) and a free batch dimension, so Lopper and
PyTorch (through onnx_to_torch.py) both read this one file."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "onnx"))
import make_torchvision as mt  # noqa: E402  (exits with a message when torch is missing)

if len(sys.argv) != 2:
    sys.stderr.write("usage: export_resnet18.py OUT.onnx\n")
    sys.exit(2)
mt.torch.set_num_threads(2)
mt.mf.export(mt.build(mt.NETS["resnet18"]), mt.fixed_input(224, 1), sys.argv[1],
             mt.torch.onnx.TrainingMode.PRESERVE, True)
