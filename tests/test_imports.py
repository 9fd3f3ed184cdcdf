"""`import selfrl` stays light."""

import subprocess
import sys


def test_import_selfrl_is_light():
    code = ("import sys, selfrl, selfrl.config, selfrl.rewards, selfrl.algorithms; "
            "heavy = [m for m in ('vllm', 'wandb', 'trl', 'deepspeed') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
