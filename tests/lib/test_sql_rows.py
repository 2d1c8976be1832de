"""lib.sql.model_from_row: a hand-written row becomes a model instance with each value in its own field."""

import pytest

from lib.sql import model_from_row
from repositories.models import Repository


def test_a_partial_row_in_the_models_order():
    repository = model_from_row(Repository, (7, "app", True), ("id", "name", "is_private"))
    assert (repository.pk, repository.name, repository.is_private) == (7, "app", True)


def test_a_partial_row_in_another_order_is_refused():
    """Model.from_db() would put "app" into id and 7 into name."""
    with pytest.raises(ValueError, match="in the model's order"):
        model_from_row(Repository, ("app", 7), ("name", "id"))
