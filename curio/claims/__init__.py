"""Check the paper's claims at small scale on a tiny world (``python -m curio.claims``).

Fine-tune a world's shipped base model (the first tiny world's, or the fork world's of
``docs/claims_v2_protocol.md``) with each loss (``conf/experiment/claims/``) for several seeds,
evaluate every model on the ID and OOD test sets, probe its token entropy and the entropy-guided
temperature at choice points versus determined tokens on held-out demonstrations, and write a
report (``docs/results_tiny.md``, ``docs/results_fork.md``) that answers five questions with a
pre-stated rule; on the fork world every SFT model then runs the same GRPO stage and is evaluated
again, for three more (SFT → GRPO).

- :mod:`curio.claims.plan`: worlds, presets (which experiments, seeds, samples) and the run layout;
- :mod:`curio.claims.runner`: runs train.py / eval.py / the probe for every job, resumable;
- :mod:`curio.claims.records`: one committed record per finished model, what the report is built from;
- :mod:`curio.claims.probes`: teacher-forced entropy and temperature by token label;
- :mod:`curio.claims.verdicts`: the questions and the rules that answer them;
- :mod:`curio.claims.report`: tables, plots and the Markdown report.
"""
