"""Build (once) the separate environment in which IBM's diffprivlib runs, and check it.

diffprivlib 0.6.x fails to import beside scikit-learn >= 1.8 (``cannot import name 'DOUBLE'
from 'sklearn.tree._tree'``), so it gets a virtual environment of its own with
scikit-learn 1.7.2. The reproduction ``dp_kmeans`` and ``bench_privacy.py`` run it there as a
subprocess (data passed as a ``.npy`` file, results returned as JSON) when that environment
exists, and say "anchor not run" otherwise.

Usage::

    python benchmarks/diffprivlib_env.py          # build it (a minute or two), then check it
    python benchmarks/diffprivlib_env.py --check  # only check it

The environment lives in ``<cache>/diffprivlib-env`` (``NEURIPS18_CACHE_DIR``, else
``$XDG_CACHE_HOME/neurips18``, else ``~/.cache/neurips18``); ``NEURIPS18_DIFFPRIVLIB_PYTHON``
may name another interpreter that has diffprivlib.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import venv

PACKAGES = ["scikit-learn==1.7.2", "diffprivlib==0.6.6", "numpy<2.4"]


def main(argv: list[str] | None = None) -> int:
    from neurips18.repro.dp_kmeans import diffprivlib_env_dir, diffprivlib_python, run_diffprivlib

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check the environment")
    args = ap.parse_args(argv)
    env = diffprivlib_env_dir()
    if not args.check and diffprivlib_python() is None:
        print(f"building {env} with {' '.join(PACKAGES)}")
        venv.EnvBuilder(with_pip=True, clear=True).create(env)
        py = env / "bin" / "python"
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PACKAGES], check=True)
    py = diffprivlib_python()
    if py is None:
        print("diffprivlib environment absent or without diffprivlib")
        return 1
    import numpy as np

    X = np.random.default_rng(0).uniform(-0.5, 0.5, size=(500, 2))
    out = run_diffprivlib(X, n_clusters=3, epsilon=1.0, seeds=[0])
    print(f"diffprivlib {out['version']} with scikit-learn {out['sklearn']} at {py}: "
          f"{len(out['runs'])} fit(s), centres of shape "
          f"{np.asarray(out['runs'][0]['centres']).shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
