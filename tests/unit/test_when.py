"""The when-expression evaluator: what it accepts, what it refuses."""

from __future__ import annotations

import pytest

from console.errors import RunbookValidationError
from console.inventory import Integration
from console.when import FIELDS, compile_when

PROD = Integration.model_validate(
    {
        "id": "support-bot",
        "name": "Support",
        "owner": "team-support",
        "environment": "prod",
        "status": "approved",
        "provider": "openai",
        "data_classes": ["customer", "personal"],
        "tags": ["chat"],
    }
)
DEV = {"id": "lab", "environment": "dev", "status": "suspended", "provider": "vertex"}


@pytest.mark.parametrize(
    ("expr", "prod", "dev"),
    [
        ("environment == 'prod'", True, False),
        ("env == 'prod'", True, False),
        ("'prod' == environment", True, False),
        ("'customer' in data_classes", True, False),
        ("'customer' not in data_classes", False, True),
        ("provider in ['openai', 'anthropic']", True, False),
        ("provider not in ('openai',)", False, True),
        ("status != 'suspended'", True, False),
        ("not status == 'suspended'", True, False),
        ("environment == 'prod' and 'personal' in data_classes", True, False),
        ("environment == 'dev' or 'chat' in tags", True, True),
        ("(environment == 'dev' or provider == 'openai') and not status == 'suspended'", True,
         False),
        ("provider == id", False, False),
        ("'chat' in tags and 'x' not in models", True, False),
    ],
)
def test_evaluates(expr: str, prod: bool, dev: bool) -> None:
    w = compile_when(expr)
    assert w.evaluate(PROD) is prod
    assert w(DEV) is dev


def test_names_are_recorded() -> None:
    assert compile_when("env == 'prod' and 'x' in tags").names == {"environment", "tags"}
    assert "data_classes" in FIELDS and "env" in FIELDS


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os')",
        "__import__('os').system('id')",
        "().__class__.__bases__[0].__subclasses__()",
        "provider.upper() == 'OPENAI'",
        "provider.__class__ == 'x'",
        "open('/etc/passwd')",
        "data_classes[0] == 'customer'",
        "lambda: 1",
        "1 + 1 == 2",
        "provider + 'x' == 'openaix'",
        "environment == 'prod' if True else False",
        "(x := 'prod') == environment",
        "f'{provider}' == 'openai'",
        "[c for c in data_classes]",
        "environment",
        "'prod'",
        "environment is 'prod'",
        "environment < 'z'",
        "secret_key == 'x'",
        "os == 'x'",
        "provider == 1",
        "provider in 'openai'",
        "tags == 'chat'",
        "environment == 'production'",
        "'customers' in data_classes",
        "status in ['approved', 'retired']",
        "'a' == 'a'",
        "'a' in ['a']",
        "provider in data_classes[0:1]",
        "provider == 'openai'; import os",
        "",
        "   ",
        "environment ==",
        "x" * 600,
        "not " * 300 + "environment == 'prod'",
        "(" * 300 + "environment == 'prod'" + ")" * 300,
    ],
)
def test_rejects(expr: str) -> None:
    with pytest.raises(RunbookValidationError) as ei:
        compile_when(expr)
    assert "invalid when" in ei.value.msg
    assert "fields:" in ei.value.hint


def test_error_names_the_problem() -> None:
    with pytest.raises(RunbookValidationError, match="unknown name 'enviroment'"):
        compile_when("enviroment == 'prod'")
    with pytest.raises(RunbookValidationError, match="Call is not allowed"):
        compile_when("__import__('os')")
    with pytest.raises(RunbookValidationError, match="Attribute is not allowed"):
        compile_when("provider.lower == 'x'")
    with pytest.raises(RunbookValidationError, match="tags is a list"):
        compile_when("tags == 'chat'")
    with pytest.raises(RunbookValidationError, match="environment is never 'production'"):
        compile_when("environment == 'production'")


def test_redundant_parentheses_are_fine() -> None:
    assert compile_when("(" * 50 + "environment == 'prod'" + ")" * 50).evaluate(PROD)
