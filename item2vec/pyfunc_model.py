"""The MLflow model file of a served item2vec model (MLflow's models-from-code).

:func:`item2vec.registry.log_model` logs this file as the model; MLflow copies it
into the model directory and runs it to serve, instead of unpickling an object.
It builds the pyfunc defined in :mod:`item2vec.registry`, which reads the
``served`` artifact (JSON and numpy files, checked against ``checksums.json``).
"""

from mlflow.models import set_model

from item2vec.registry import Item2VecPyfunc

set_model(Item2VecPyfunc())
