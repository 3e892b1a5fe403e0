"""jaxsem: Bayesian multilevel structural equation models in JAX.

The public entry points are :class:`Model` (model text in lavaan or Mplus syntax, plus
variable roles) and :meth:`Model.prepare` (checks data against the model). See
docs/architecture.md for the layout and the data flow.
"""
import jax as _jax

_jax.config.update("jax_enable_x64", True)  # statistics users expect float64 on CPU

from jaxsem.data import Data, Roles, prepare_data, read_text_data  # noqa: E402
from jaxsem.errors import (DataError, JaxsemError, ModelError, ModelSyntaxError,  # noqa: E402
                           PriorError)
from jaxsem.model import Analysis, Model  # noqa: E402
from jaxsem.partable import ParTable, build_partable  # noqa: E402
from jaxsem.spec import ModelSpec  # noqa: E402

__all__ = ["Analysis", "Data", "DataError", "JaxsemError", "Model", "ModelError",
           "ModelSpec", "ModelSyntaxError", "ParTable", "PriorError", "Roles",
           "build_partable", "prepare_data", "read_text_data"]
__version__ = "0.1.0"
