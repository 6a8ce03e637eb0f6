"""A job that writes its text back (tests only): config strings, names, locks and late signals, no JAX."""

import atexit
import time
from dataclasses import dataclass

from theseus.config import field
from theseus.errors import TheseusError
from theseus.job import BasicJob
from theseus.registry import JOBS


@dataclass
class EchoConfig:
    """Echo job settings."""

    text: str = field("echo/text", default="")
    sleep: float = field("echo/sleep", default=0.0, doc="seconds the job takes")
    fail: bool = field("echo/fail", default=False, doc="fail at once, before any step")
    linger: float = field("echo/linger", default=0.0, doc="seconds the process takes to exit afterwards")


class EchoJob(BasicJob[EchoConfig]):
    """Write echo.text to results/echo.json."""

    CONFIG = EchoConfig

    def run(self) -> None:
        a = self.args
        if a.fail:
            raise TheseusError("echo.fail is set")
        time.sleep(a.sleep)
        self.report(1)
        self.run_dir.write_result("echo", {"text": a.text})
        if a.linger:
            atexit.register(time.sleep, a.linger)  # a slow teardown, like a big framework's


JOBS["test/echo"] = EchoJob
