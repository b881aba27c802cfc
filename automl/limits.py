"""Upper bounds of counts that reach torch as sizes or loop counts: far above any real run, low enough that a
typo (an extra digit or ten) is a message instead of a C overflow or an allocation the machine cannot make.

A module of its own, without imports, so that ``automl space`` commands share the recipe's bounds without
loading the recipe's validation (pydantic). The bound on threads is ``automl.train.threads.MAX_THREADS``."""

MAX_BATCH = 2**20      # images in one mini-batch (and per `automl space profile` run)
MAX_IMAGE_SIZE = 4096  # pixels, height and width
MAX_WORKERS = 1024     # DataLoader processes: more than the cores of any machine
MAX_EPOCHS = 100_000
MAX_LAM = 4096         # architectures sampled per step (the paper's lambda is 2)
# an integer written with a dot or an exponent (10.0, 1e4), in a recipe or a CLI flag, is read up to 10^this
MAX_WHOLE_EXPONENT = 30
