"""One at-fork hook for the package: components restart in a defined order, not import order."""

from __future__ import annotations

import gc
import re
from pathlib import Path

import flagsync
from flagsync.runtime._fork import ForkRegistry, Phase


class _Component:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def restart(self) -> None:
        self.log.append(self.name)


def test_controllers_restart_before_clients_whatever_the_registration_order() -> None:
    log: list[str] = []
    registry = ForkRegistry()
    client_a, controller_a = _Component("client a", log), _Component("controller a", log)
    client_b, controller_b = _Component("client b", log), _Component("controller b", log)
    registry.register(client_a, Phase.CLIENT, _Component.restart)
    registry.register(controller_a, Phase.CONTROLLER, _Component.restart)
    registry.register(client_b, Phase.CLIENT, _Component.restart)
    registry.register(controller_b, Phase.CONTROLLER, _Component.restart)
    registry.run_in_child()
    assert log == ["controller a", "controller b", "client a", "client b"]


def test_a_component_that_is_gone_is_not_restarted() -> None:
    log: list[str] = []
    registry = ForkRegistry()
    kept = _Component("kept", log)
    registry.register(kept, Phase.CLIENT, _Component.restart)
    registry.register(_Component("dropped", log), Phase.CLIENT, _Component.restart)
    gc.collect()
    registry.run_in_child()
    assert log == ["kept"]


def test_the_package_registers_one_at_fork_hook() -> None:
    root = Path(flagsync.__file__).parent
    calls = [
        path.relative_to(root).as_posix()
        for path in sorted(root.rglob("*.py"))
        for _ in re.finditer(r"os\.register_at_fork\(", path.read_text(encoding="utf-8"))
    ]
    assert calls == ["runtime/_fork.py"]
