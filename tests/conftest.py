import torch

# The networks in the tests are tiny: one intra-op thread is faster than two fighting over 2 cores.
torch.set_num_threads(1)
