import pytest
from manifest_fixtures import minimal_manifest


@pytest.fixture
def minimal() -> dict:
    return minimal_manifest()
