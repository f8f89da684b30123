"""The RL stage: GRPO from an SFT export, in the same codebase (``python rl.py``).

One concept per module: ``advantages`` (group-relative advantages), ``policy_loss`` (the policy
objectives, on the chunked loss contract), ``weights`` (how token losses are aggregated),
``rewards`` (the grader as the reward), ``rollout`` (sampling a batch of groups), ``data`` (the
prompts), ``module`` (the LightningModule), ``run`` (building everything from the config).
"""
