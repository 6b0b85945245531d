from tests.training.conftest import module_env  # noqa: F401  (a data dir shared by one module's tests)
