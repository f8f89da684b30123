"""Where the evaluation tests find the repository and the authors' shared benchmark files."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The default ``paths.benchmarks_dir``: beside the repository, never an absolute machine path.
SHARED_BENCHMARKS = REPO_ROOT.parent / "shared" / "benchmarks"
