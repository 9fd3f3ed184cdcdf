"""Classic RLHF: a pairwise reward model (:mod:`selfrl.rlhf.rm`) and LoRA merging
(:mod:`selfrl.rlhf.merge`).  SFT is :mod:`selfrl.sft`; PPO runs in the engine's trainer."""
