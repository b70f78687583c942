"""Typed errors: each names the file, column or key that is wrong."""


class MlPlatformError(Exception):
    """Base class of every error ml_platform raises on purpose."""


class ConfigError(MlPlatformError, ValueError):
    """A setting or config value is invalid."""


class LandingFileError(MlPlatformError):
    """A landing file cannot be used."""


class LandingFileMissingError(LandingFileError, FileNotFoundError):
    """No landing file exists for a partition."""


class EmptyLandingFileError(LandingFileError):
    """A landing file has no bytes or no rows."""


class CorruptLandingFileError(LandingFileError):
    """A landing file cannot be parsed."""


class DataValidationError(MlPlatformError, ValueError):
    """Data does not meet the platform's data contract."""


class FeedbackError(DataValidationError):
    """An outcome file cannot be read as outcomes (its id or label column is missing)."""


class ModelStoreError(MlPlatformError):
    """The model store is missing something or holds something wrong."""


class NoProductionModelError(ModelStoreError, LookupError):
    """No model has been promoted to production yet."""


class ModelVersionNotFoundError(ModelStoreError, LookupError):
    """The requested model version does not exist (or is incomplete)."""


class PointerConflictError(ModelStoreError):
    """The production pointer moved between reading it and swapping it (another deploy)."""


class ModelIntegrityError(ModelStoreError):
    """A stored artifact does not match the sha256 recorded when it was written."""


class StorageAccessError(MlPlatformError):
    """Object storage refused the request (credentials, permissions, missing bucket): retrying
    will not help."""


class StorageUnavailableError(MlPlatformError, ConnectionError):
    """Object storage could not be reached; a retry may succeed."""


class PredictionError(MlPlatformError, ValueError):
    """Rows cannot be predicted: the input or the request is wrong, not the model."""


class SignatureError(PredictionError):
    """Input rows do not meet the model's signature (its input contract)."""


class EmptyInputError(SignatureError):
    """The input has no rows."""


class MissingColumnsError(SignatureError):
    """The input lacks feature columns of the signature."""


class ColumnTypeError(SignatureError):
    """A column holds values of another kind than the signature's (text in a numeric column, ...)."""


class UserCodeError(ConfigError):
    """An import path of pipelines.yaml (estimator, feature transform) names nothing usable, or what
    it names refuses its params (``about_params``)."""

    def __init__(self, message: str, about_params: bool = False):
        super().__init__(message)
        self.about_params = about_params


class ModelDependencyError(ModelStoreError):
    """A model needs a module (the team's own code, a package) that is missing here or of another
    version than the one it was trained with."""


def yaml_boolean_hint(class_name: str, classes: list[str]) -> str:
    """What to say when a class name from pipelines.yaml is "True" / "False" and the model has no such
    class: YAML read an unquoted yes / no / on / off as a boolean. Empty otherwise."""
    if class_name in ("True", "False") and class_name not in classes:
        return " (YAML reads unquoted yes/no/on/off/true/false as booleans: quote the class name in pipelines.yaml)"
    return ""
