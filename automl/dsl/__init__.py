"""The ``.space`` language: parse a search-space file into the IR (:mod:`automl.dsl.ir`).

>>> from automl.dsl import load_space
>>> space = load_space("spaces/digits.space", overrides={"classes": "10"})  # doctest: +SKIP
"""

from automl.dsl import ir
from automl.dsl._parser import (MAX_INT, PUBLISHED_SPACES, ParamError, SpaceFileError, grammar_text, load_space,
                                parse_space, space_parser)
from automl.dsl.digest import file_sha256, space_digest

__all__ = ["load_space", "parse_space", "grammar_text", "space_parser", "ir", "ParamError", "space_digest",
           "file_sha256", "SpaceFileError", "PUBLISHED_SPACES", "MAX_INT"]
