"""The fast depthwise weight gradient now lives with model building, :mod:`automl.nn.depthwise`; this
module re-exports it for the training code that imports it from here."""

from automl.nn.depthwise import (FastDepthwiseConv2d, depthwise_weight_grad, fast_path_applies, plain_convs,
                                 use_fast_depthwise_grad)

__all__ = ["FastDepthwiseConv2d", "use_fast_depthwise_grad", "plain_convs", "depthwise_weight_grad",
           "fast_path_applies"]
