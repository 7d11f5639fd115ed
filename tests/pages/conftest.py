"""AppTests of the dashboard's pages: the fixtures they share with the tests of the layers below."""

from tests.classifier.conftest import tiny_cohort, tiny_models_dir  # noqa: F401 - fixtures of the Risk page
from tests.imaging.conftest import demo_dir_or_skip  # noqa: F401 - fixture of the Case page
