"""The compiled evaluation cores, without loading torch when possible.

knet._eval_C is the torch-free build of csrc/ops/{rle,coco_eval,png,pq_eval,semantic_eval}
(see csrc/eval_module.cpp); the same code is also inside knet._C. Evaluation uses _eval_C when
it is built, so that `knet eval` does not pay for importing torch, and knet._C otherwise (the
same implementation, reached through knet.extension, which imports torch).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

_MOD: ModuleType | None = None


def native() -> ModuleType:
    global _MOD
    if _MOD is None:
        if importlib.util.find_spec("knet._eval_C") is not None:
            _MOD = importlib.import_module("knet._eval_C")
        else:
            from knet.extension import ext

            _MOD = ext()
    return _MOD
