"""The model tests' fixtures (tiny sizes, inputs, random weights, the MPLT reference): checkpoint
tests load weights into the same small models."""

from tests.models.conftest import (  # noqa: F401 - fixtures are found by name
    _seeded_initialisation,
    inputs,
    mplt_reference,
    random_weights,
    tiny,
)
