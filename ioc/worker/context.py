"""The plan context: the plans loaded from modules, validated against the device registry."""

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Self

import pydantic
from bluesky.utils import Msg
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticOmit, core_schema

from ..errors import RequestError, format_validation_error
from .devices import DeviceRegistry
from .plan_models import build_model, device_paths, opaque_defaults, resolve_devices

PlanFunction = Callable[..., Iterator[Msg]]


class PlanLoadError(Exception):
    """Plans could not be loaded; the message names the module (or plan) and the cause."""


@dataclass(frozen=True)
class Plan:
    """A plan function with its parameter model."""

    name: str
    function: PlanFunction
    model: type[pydantic.BaseModel]
    description: str
    positional_only: tuple[str, ...]
    opaque_defaults: frozenset[str]
    """Parameters left out of validated params unless given: JSON cannot carry their default."""


class PlanContext:
    """The plans that can be requested, and the devices their parameters name."""

    def __init__(self, plans: Mapping[str, Plan], devices: DeviceRegistry) -> None:
        self._plans = dict(sorted(plans.items()))
        self._devices = devices

    @classmethod
    def load(cls, modules: Sequence[str], devices: DeviceRegistry) -> Self:
        """Collect the plans of `modules` and their submodules (a RELOAD is a new worker
        process, which imports them as they are now).
        """
        plans = {}
        for name, (module_name, function) in _collect_plans(modules).items():
            try:
                model = build_model(name, function, devices)
            except Exception as error:
                raise PlanLoadError(
                    f"plan {name!r} of module {module_name!r}: cannot model its parameters: "
                    f"{type(error).__name__}: {error}"
                ) from error
            positional_only = tuple(
                parameter.name
                for parameter in inspect.signature(function).parameters.values()
                if parameter.kind is inspect.Parameter.POSITIONAL_ONLY
            )
            description = inspect.getdoc(function) or ""
            plans[name] = Plan(
                name, function, model, description, positional_only, opaque_defaults(model)
            )
        return cls(plans, devices)

    @property
    def plan_names(self) -> list[str]:
        """The names of the plans, sorted."""
        return list(self._plans)

    @property
    def devices(self) -> DeviceRegistry:
        """The device registry the plans' parameters are validated against."""
        return self._devices

    def validate(self, name: str, params: Mapping[str, object]) -> dict[str, object]:
        """JSON-able `params` of plan `name` with defaults filled in, or `RequestError`."""
        return self.validate_naming_devices(name, params)[0]

    def validate_naming_devices(
        self, name: str, params: Mapping[str, object]
    ) -> tuple[dict[str, object], dict[str, str]]:
        """`validate`, and the device names the params pass by their path (`params.motor`)."""
        plan, model = self._validated(name, params)
        devices = {
            path: device
            for field in type(model).model_fields
            for path, device in device_paths(getattr(model, field), f"params.{field}").items()
        }
        dumped = model.model_dump(mode="json", exclude=set(plan.opaque_defaults - model.model_fields_set))
        return dumped, devices

    def build_plan(self, name: str, params: Mapping[str, object]) -> Iterator[Msg]:
        """The generator of plan `name` called with validated `params`, device names resolved."""
        plan, model = self._validated(name, params)
        available = self._devices.available()
        values = {
            field: resolve_devices(getattr(model, field), available)
            for field in type(model).model_fields
        }
        args = [values.pop(field) for field in plan.positional_only]
        return plan.function(*args, **values)

    def catalog(self) -> list[dict[str, Any]]:
        """Name, description and JSON schema of the parameters of every plan, sorted by name."""
        return [
            {
                "name": plan.name,
                "description": plan.description,
                "schema": plan.model.model_json_schema(schema_generator=_LenientJsonSchema),
            }
            for plan in self._plans.values()
        ]

    def _validated(
        self, name: str, params: Mapping[str, object]
    ) -> tuple[Plan, pydantic.BaseModel]:
        plan = self._plans.get(name)
        if plan is None:
            names = ", ".join(self._plans)
            expected = f"expected one of {names}" if names else "no plans are loaded"
            raise RequestError(f"name: unknown plan {name!r}; {expected}")
        try:
            return plan, plan.model.model_validate(params)
        except pydantic.ValidationError as error:
            raise RequestError(format_validation_error(error, prefix="params.")) from None


class _LenientJsonSchema(GenerateJsonSchema):
    """Schema generation that leaves out parameters JSON cannot express (e.g. callbacks)."""

    def handle_invalid_for_json_schema(
        self, schema: core_schema.CoreSchema, error_info: str
    ) -> JsonSchemaValue:
        raise PydanticOmit


def _collect_plans(names: Sequence[str]) -> dict[str, tuple[str, PlanFunction]]:
    """Plan functions by name, with the module each was found in."""
    found: dict[str, tuple[str, PlanFunction]] = {}
    for module in _import_all(names):
        for name, function in _plans_of(module).items():
            if name in found and found[name][1] is not function:
                raise PlanLoadError(
                    f"plan {name!r} is defined twice: in module {found[name][0]!r}"
                    f" and in {module.__name__!r}"
                )
            found.setdefault(name, (module.__name__, function))
    return found


def _plans_of(module: ModuleType) -> dict[str, PlanFunction]:
    """The generator functions `module` exports in ``__all__``, else the public ones it defines."""
    exported = getattr(module, "__all__", None)
    if exported is None:
        candidates = {
            name: value
            for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
        }
    else:
        missing = [name for name in exported if not hasattr(module, name)]
        if missing:
            raise PlanLoadError(
                f"module {module.__name__!r} lists undefined names in __all__: {', '.join(missing)}"
            )
        candidates = {name: getattr(module, name) for name in exported}
    return {name: value for name, value in candidates.items() if inspect.isgeneratorfunction(value)}


def _import_all(names: Sequence[str]) -> list[ModuleType]:
    """The modules `names`, and every submodule of those that are packages."""
    modules = []
    for name in names:
        module = _import(name)
        modules.append(module)
        if hasattr(module, "__path__"):
            # walk_packages yields each package before importing it to look inside: import it first.
            submodules = pkgutil.walk_packages(module.__path__, f"{name}.")
            modules.extend(_import(info.name) for info in submodules)
    return modules


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as error:
        raise PlanLoadError(
            f"cannot import plan module {name!r}: {type(error).__name__}: {error}"
        ) from error

