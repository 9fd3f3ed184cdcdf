"""selfrl: reinforcement-learning post-training of language models when labels are scarce.

Importing the package is cheap: it pulls in neither torch's optional engines, vLLM, W&B nor
TRL.  Start from the command line (``selfrl --help``) or from :mod:`selfrl.trainer.trainer`.
"""

__version__ = "0.1.0"
