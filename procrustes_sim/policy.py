"""Sparsity policy: which operand's zeros each pass skips.

The default is Procrustes': FW and BW skip zero weights (BW reads them
through the transposed block layout) and WU skips zero input activations.
A pass can skip the zeros of either operand it reads, or none.
"""

from __future__ import annotations

from procrustes_sim.errors import InputError
from procrustes_sim.workload import PASS_OPERANDS, PASSES, Pass, Tensor

DEFAULT_POLICY: dict[Pass, Tensor | None] = {Pass.FW: Tensor.W, Pass.BW: Tensor.W,
                                             Pass.WU: Tensor.X}


def parse_policy(text: str | dict | None) -> dict[Pass, Tensor | None]:
    """Parse ``FW=W,BW=W,WU=X``; ``none`` alone skips nothing in any pass.

    Passes left out keep the default. Raises InputError for an unknown pass
    or operand, or a pass named twice.
    """
    policy = dict(DEFAULT_POLICY)
    if text is None:
        return policy
    if isinstance(text, str) and text.strip() == "none":
        return dict.fromkeys(PASSES)
    if isinstance(text, dict):
        items = list(text.items())
    else:
        items = [part.split("=", 1) if "=" in part else (part, None)
                 for part in text.split(",") if part.strip()]
    seen = set()
    for pass_name, operand_name in items:
        try:
            pass_ = Pass(str(pass_name).strip())
        except ValueError:
            raise InputError(f"invalid skip policy entry {pass_name!r}: the pass must be one of "
                             f"{', '.join(p.value for p in PASSES)}, as in FW=W,BW=W,WU=X") from None
        if pass_ in seen:
            raise InputError(f"invalid skip policy: {pass_.value} is given twice; name each "
                             "pass once, as in FW=W,BW=W,WU=X")
        seen.add(pass_)
        allowed = [t.value for t in PASS_OPERANDS[pass_][0]]
        value = None if operand_name is None else str(operand_name).strip()
        if value is None or value not in allowed + ["none"]:
            raise InputError(f"invalid skip policy {pass_.value}={value}: {pass_.value} can skip "
                             f"zeros of {' or '.join(allowed)}, or none")
        policy[pass_] = None if value == "none" else Tensor(value)
    return policy


def format_policy(policy: dict[Pass, Tensor | None]) -> str:
    """Format a policy in the form that parse_policy reads."""
    return ",".join(f"{p.value}={policy[p].value if policy[p] else 'none'}" for p in PASSES)
