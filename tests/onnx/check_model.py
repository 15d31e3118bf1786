"""check_model.py FILE... - python3-onnx's checker (with shape inference) on each
file Lopper wrote; prints why and exits 1 if one is refused."""
import sys

import onnx

status = 0
for path in sys.argv[1:]:
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
    except Exception as e:  # the checker raises several types; all mean "refused"
        print("%s: %s" % (path, e))
        status = 1
sys.exit(status)
