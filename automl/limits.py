"""Upper bounds of counts that reach torch as sizes or loop counts: far above any real run, low enough that a
typo (an extra digit or ten) is a message instead of a C overflow or an allocation the machine cannot make.

A module of its own, without imports, so that ``automl space`` commands share the recipe's bounds without
loading the recipe's validation (pydantic), and the command line checks the environment's thread counts before
torch is imported."""

MAX_BATCH = 2**20      # images in one mini-batch (and per `automl space profile` run)
MAX_IMAGE_SIZE = 4096  # pixels, height and width
MAX_WORKERS = 1024     # DataLoader processes: more than the cores of any machine
MAX_EPOCHS = 100_000
MAX_LAM = 4096         # architectures sampled per step (the paper's lambda is 2)
# an integer written with a dot or an exponent (10.0, 1e4), in a recipe or a CLI flag, is read up to 10^this
MAX_WHOLE_EXPONENT = 30
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # the environment's thread counts torch honours, in order
# The most intra-op threads a run may ask for. A fixed number, not a multiple of this machine's cores: a recipe is
# the run's record and must load alike on the machine that resumes or ranks it. 1024 is above the hardware threads
# of the largest machines (2 x 192 cores x 2); threads=1000000 made torch fail (std::bad_alloc, exit 1).
MAX_THREADS = 1024
# Where the command line keeps a malformed OMP_NUM_THREADS / MKL_NUM_THREADS while a command runs (SET_ASIDE + the
# name): out of libgomp's sight as torch is imported (it printed "libgomp: Invalid value for environment variable
# OMP_NUM_THREADS" before automl's own message), still read by automl.train.threads.env_counts.
SET_ASIDE = "AUTOML_SET_ASIDE_"


def env_thread_count(text: str | None) -> int | None:
    """The thread count an environment variable's value ``text`` gives (OMP_NUM_THREADS, MKL_NUM_THREADS): the
    first number of a list such as ``4,2`` (libgomp's nested levels), or None when unset (None, or empty). A
    ValueError where it gives none a run could use: not a whole number from 1 to :data:`MAX_THREADS` in ASCII
    digits, whitespace alone included (libgomp refuses it too)."""
    if not text:
        return None
    first = text.split(",")[0].strip()
    if not (first.isascii() and first.isdigit()) or not 1 <= int(first) <= MAX_THREADS:  # "²" is a digit too
        raise ValueError(f"not a thread count: {text!r}")
    return int(first)


def omp_refuses(text: str | None) -> bool:
    """Whether torch's OpenMP runtime (libgomp) prints its own "Invalid value" complaint about a thread count
    ``text``: set, and not a list of whole numbers from 1 (``""``, ``4,x`` and ``4,0`` too, which
    :func:`env_thread_count` reads as unset and as 4)."""
    if text is None:
        return False
    parts = [p.strip() for p in text.split(",")]
    return not all(p.isascii() and p.isdigit() and int(p) > 0 for p in parts)
