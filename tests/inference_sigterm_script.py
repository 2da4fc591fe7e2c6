"""Run by test_inference_sampler: a slowed toy run with checkpoints in DIR; exits with
EXIT_CHECKPOINTED on SIGTERM, else writes DIR/result.npz."""

import sys
from pathlib import Path

import numpy as np

from gammadm.inference.api import model_from_arrays
from gammadm.inference.sampler import (EXIT_CHECKPOINTED, Checkpointed, SamplerSettings,
                                       checkpoint_path, run_dynesty)

from . import inference_toys as toy


def main(out: str, delay: float) -> int:
    x = toy.draw(np.random.default_rng(5), 300, 420, 280, 0.6)
    model = model_from_arrays([toy.arrays(x)], toy.config(), [toy.SPECTRUM])
    like = toy.Slow(model.loglike, delay)
    try:
        res, _ = run_dynesty(like, model.prior, model.ndim, model.names,
                          SamplerSettings(nlive=100, dlogz=0.5, seed=9),
                          checkpoint_path(out, "signal"), checkpoint_every=3600)
    except Checkpointed:
        return EXIT_CHECKPOINTED
    w = np.exp(res.logwt - res.logwt.max())
    np.savez(Path(out) / "result.npz", samples=res.samples, weights=w / w.sum(),
             logz=res.logz[-1], logzerr=res.logzerr[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2])))
