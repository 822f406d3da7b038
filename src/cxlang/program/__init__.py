"""Running a compiled CX program: its host (values, entities, services, output) and lifetime."""

from .exit_codes import ExitCode
from .host import ProgramHost
from .run import RunOptions, run_program, run_source

__all__ = ["ExitCode", "ProgramHost", "RunOptions", "run_program", "run_source"]
