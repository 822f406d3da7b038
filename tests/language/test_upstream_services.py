"""Services of upstream CX's dialect, as CX programs see them: ``iam``, ``execute`` (refused
unless the run allows it), ``await`` with a range, the events the runtime answers
(``vector.*``, ``local.llm.*``), the notice for families nothing answers, and the local
backend's answer to a condition."""

from __future__ import annotations

import io
import json
import shlex
import sys
import time
from pathlib import Path

import pytest

from cxlang.cli.main import main
from cxlang.program import RunOptions, run_source

from ._helpers import FILENAME, Result, leaks, run

PYTHON = shlex.quote(sys.executable)


def run_allowing(source: str, *, timeout: float = 20.0) -> Result:
    """Run *source* as ``cx run --allow-execute`` would."""
    out, err = io.StringIO(), io.StringIO()
    options = RunOptions(out=out, err=err, timeout=timeout, allow_execute=True)
    code = run_source(source, FILENAME, options)
    return Result(int(code), out.getvalue(), err.getvalue())


def ok_lines(result: Result) -> list[str]:
    assert result.code == 0, result.err
    assert result.err == ""
    return result.out_lines


# iam --------------------------------------------------------------------------------------------


def test_iam_fires_its_handlers_when_the_condition_holds() -> None:
    out = ok_lines(run(
        'iam { context: "Can I?", data: { condition: true, level: 3 }, handlers: [ me.yes ] };\n'
        'iam { context: "Can I?", data: { condition: false }, handlers: [ me.no ] };\n'
        'on me.yes (e) { print("yes " + e.level + " " + e.context); }\n'
        'on me.no (e) { print("no"); }\n'))
    assert out == ["yes 3 Can I?"]


def test_iam_as_an_expression_gives_whether_it_holds() -> None:
    assert ok_lines(run('on go { print([iam { condition: 1 }, iam { condition: 0 }]); }\n'
                        'emit go;')) == ["[true, false]"]


# execute ----------------------------------------------------------------------------------------


def test_execute_is_refused_without_the_flag_and_the_program_hears_why() -> None:
    result = run('execute { command: "echo hi", handlers: [ ran ] };\n'
                 'on ran (e) { print("ran"); }\n'
                 'on execute.error (e) { print(e.error); print(e.service); }\n')
    assert result.code == 0, result.err
    error, service = result.out_lines
    assert "does not allow execute" in error
    assert "cx run --allow-execute" in error
    assert service == "execute"


def test_execute_refused_and_unhandled_is_reported_at_the_call() -> None:
    source = 'print("before");\nvar r = execute { command: "echo hi" };\nprint(r);\n'
    result = run(source)
    assert result.code == 1
    assert result.out_lines == ["before", "null"]
    assert result.err.startswith("prog.cx:2:9: execute failed: this run does not allow "
                                 "execute")
    assert "--allow-execute" in result.err
    assert "nothing handles it: add on execute.error" in result.err
    assert leaks(result.err, source) == []


def test_execute_with_the_flag_runs_the_command_and_gives_its_output_and_exit_code() -> None:
    script = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    result = run_allowing(
        f'execute {{ command: {json.dumps(PYTHON)}, arguments: ["-c", {json.dumps(script)}],\n'
        '          handlers: [ ran ] };\n'
        'on ran (e) { print(e.output); print(e.error); print(e.exitCode); print(e.success);\n'
        '             print(e.result.exitCode); print(e.durationMs >= 0); }\n')
    assert ok_lines(result) == ["out", "", "err", "", "3", "false", "3", "true"]


def test_execute_runs_no_shell() -> None:
    code = "import sys; print(sys.argv[1:])"
    result = run_allowing(
        f'var r = execute {{ command: {json.dumps(PYTHON + " -c " + shlex.quote(code))}'
        ' + " $HOME \'a b\' ; *" };\nprint(r.output);\n')
    assert ok_lines(result) == ["['$HOME', 'a b', ';', '*']", ""]


def test_execute_stops_a_command_at_the_calls_timeout() -> None:
    started = time.perf_counter()
    result = run_allowing(
        f'execute {{ command: {json.dumps(PYTHON)}, arguments: ["-c", "import time; '
        'time.sleep(30)"], timeout: 200, handlers: [ ran ] };\n'
        'on ran (e) { print("ran"); }\non execute.error (e) { print(e.error); }\n')
    assert time.perf_counter() - started < 20
    assert result.code == 0, result.err
    (error,) = result.out_lines
    assert "did not finish within the call's timeout: of 200 ms and was stopped" in error


def test_execute_of_a_missing_program_fails_saying_so() -> None:
    result = run_allowing('execute { command: "no-such-program-cx-test" };\n'
                          'on execute.error (e) { print(e.error); }\n')
    (error,) = ok_lines(result)
    assert error.startswith('cannot run "no-such-program-cx-test": no such program')


def test_execute_needs_a_command() -> None:
    result = run_allowing('execute { arguments: ["x"] };\n'
                          'on execute.error (e) { print(e.error); }\n')
    (error,) = ok_lines(result)
    assert error.startswith("execute needs command:")


def test_cx_run_allows_execute_only_with_the_flag(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    program = tmp_path / "prog.cx"
    program.write_text(f'var r = execute {{ command: {json.dumps(PYTHON)}, '
                       'arguments: ["-c", "print(6 * 7)"] };\nprint(r.output);\n')
    assert main(["run", str(program)]) == 1
    captured = capsys.readouterr()
    assert "--allow-execute" in captured.err
    assert main(["run", "--allow-execute", str(program)]) == 0
    assert capsys.readouterr().out == "42\n\n"


# await with a range -----------------------------------------------------------------------------


def test_await_with_a_range_waits_its_middle() -> None:
    started = time.perf_counter()
    out = ok_lines(run(
        'var t = await { minDurationMs: 150, maxDurationMs: 250, reason: "pause",\n'
        '                handlers: [ waited ] };\n'
        'print(t);\n'
        'on waited (e) { print(e.reason + " " + e.requestedDurationMs + " "\n'
        '                      + (e.actualDurationMs >= 150)); }\n'))
    assert time.perf_counter() - started >= 0.15
    assert sorted(out) == ["200", "pause 200 true"]


def test_await_with_one_bound_waits_it_and_duration_ms_wins() -> None:
    assert ok_lines(run('print(await { minDurationMs: 20 });\n'
                        'print(await { maxDurationMs: 30 });\n'
                        'print(await { durationMs: 5, minDurationMs: 10, maxDurationMs: 20 });\n'
                        'print(await { minDurationMs: 1, maxDurationMs: 2 });\n')
                    ) == ["20", "30", "5", "1.5"]


def test_await_range_literals_are_checked_when_compiling() -> None:
    result = run('await { minDurationMs: 500, maxDurationMs: 100 };\n'
                 'await { minDurationMs: -1 };\n')
    assert result.code == 2
    assert "prog.cx:1:44: maxDurationMs must be at least minDurationMs (500), got 100" \
        in result.err
    assert "prog.cx:2:24: minDurationMs must be a number of milliseconds >= 0, got -1" \
        in result.err


def test_a_computed_await_range_is_checked_when_it_runs() -> None:
    result = run('var low = 50;\nvar r = await { minDurationMs: low, maxDurationMs: 10 };\n'
                 'print(r);\n')
    assert result.code == 1
    assert result.out_lines == ["null"]
    assert "prog.cx:2:9: runtime error in the await call: maxDurationMs must be at least " \
           "minDurationMs (50), got 10" in result.err


# vector.* ---------------------------------------------------------------------------------------


def test_vector_events_add_and_search_the_memory_learn_fills() -> None:
    out = ok_lines(run(
        'learn { data: "tea is a drink" };\n'
        'on system.start {\n'
        '  emit vector.add.text { text: "cats purr", metadata: { kind: "pet" },\n'
        '                         handlers: [ demo.added ] };\n'
        '}\n'
        'on demo.added (e) {\n'
        '  print("added " + e.id + " " + e.text + " " + e.metadata.kind);\n'
        '  emit vector.search.text { query: "cats purr", topK: 1, handlers: [ demo.found ] };\n'
        '  emit vector.count;\n'
        '}\n'
        'on demo.found (e) { print(e.query); print(e.results[0].content);\n'
        '  print(e.results[0].score); print(e.results.length); print(e.duration >= 0); }\n'
        'on vector.count.completed (e) { print("count " + e.count); }\n'))
    assert out[0] == "added memory-2 cats purr pet"
    assert sorted(out[1:]) == sorted(["cats purr", "cats purr", "1.0", "1", "true", "count 2"])


def test_vector_handlers_entries_may_carry_a_payload() -> None:
    assert ok_lines(run('emit vector.list.ids { handlers: [ listed { tag: "t" }, again ] };\n'
                        'on listed (e) { print(e.tag + " " + e.count); }\n'
                        'on again (e) { print(e.ids); }\n')) == ["t 0", "[]"]


def test_vector_records_are_got_updated_and_deleted_by_id() -> None:
    out = ok_lines(run(
        'on system.start { emit vector.add.text { text: "one", id: "a" }; }\n'
        'on vector.add.text.completed (e) { emit vector.update { id: "a", content: "two" }; }\n'
        'on vector.update.completed (e) { print(e.updated); emit vector.get { id: "a" }; }\n'
        'on vector.get.completed (e) { print(e.found); print(e.record.content);\n'
        '  if (e.found) { emit vector.delete { id: "a" }; } }\n'
        'on vector.delete.completed (e) { print(e.deleted); emit vector.get { id: "a" }; }\n'))
    assert out == ["true", "true", "two", "true", "false", "null"]


def test_a_vector_request_that_cannot_be_served_emits_its_failed_event() -> None:
    assert ok_lines(run('emit vector.search.text { topK: 2 };\n'
                        'on vector.search.text.failed (e) { print(e.error); }\n')
                    ) == ["query: must be a non-empty text, got null"]


def test_an_unhandled_failed_request_is_reported_at_the_emit() -> None:
    source = 'print("x");\n  emit vector.add.vector { content: "c", vector: "no" };\n'
    result = run(source)
    assert result.code == 1
    assert result.err.startswith('prog.cx:2:3: runtime error: vector.add.vector failed: '
                                 'vector: must be a list of numbers, got "no" (nothing handles '
                                 "it: add on vector.add.vector.failed)")
    assert leaks(result.err, source) == []


# local.llm.* ------------------------------------------------------------------------------------


def test_local_llm_events_are_served_by_the_runs_backend() -> None:
    out = ok_lines(run(
        'emit local.llm.load { modelPath: "models/tiny.gguf" };\n'
        'on local.llm.model.loaded (e) { print(e.modelName + " " + e.backend + " " + e.success);\n'
        '  emit local.llm.generate { prompt: "Say hi" }; }\n'
        'on local.llm.text.generated (e) { print(e.prompt + " -> " + e.response); }\n'))
    assert out == ["tiny.gguf local true", "Say hi -> Generated: Say hi"]


def test_local_llm_stream_emits_start_tokens_and_complete() -> None:
    out = ok_lines(run(
        'emit local.llm.stream { prompt: "a b" };\n'
        'on local.llm.stream.start (e) { print("start " + e.prompt); }\n'
        'on local.llm.token (e) { print(e.index + ":" + e.token); }\n'
        'on local.llm.stream.complete (e) { print("done " + e.response); }\n'))
    assert out == ["start a b", "0:Generated: ", "1:a ", "2:b", "done Generated: a b"]


def test_local_llm_generate_without_a_prompt_fails() -> None:
    assert ok_lines(run('emit local.llm.generate { };\n'
                        'on local.llm.text.generation.error (e) { print(e.error); }\n')
                    ) == ["prompt: must be a non-empty text, got null"]


# Families nothing serves ------------------------------------------------------------------------


def test_an_unserved_family_gets_one_notice_and_the_run_goes_on() -> None:
    result = run('emit realtime.connect { demo: 1 };\n'
                 'emit realtime.text.send { text: "hi" };\n'
                 'emit voice.input.start;\n'
                 'print("still running");\n')
    assert result.code == 0
    assert result.out_lines == ["still running"]
    notices = [line for line in result.err.splitlines() if line.startswith("prog.cx:")]
    assert notices == [
        "prog.cx:1:1: notice: nothing in this runtime serves realtime.* events, so "
        "realtime.connect gets no answer (told once; the run goes on)",
        "prog.cx:3:1: notice: nothing in this runtime serves voice.* events, so "
        "voice.input.start gets no answer (told once; the run goes on)",
    ]


def test_a_program_that_handles_the_event_itself_gets_no_notice() -> None:
    assert ok_lines(run('emit realtime.connect;\non realtime.connect { print("mine"); }\n')
                    ) == ["mine"]


# The local backend's conditions -----------------------------------------------------------------


def test_a_question_asked_in_a_loop_is_answered_no_in_the_end() -> None:
    source = ('var n = 0;\n'
              'on ask { n = n + 1; print(n);\n'
              '         is { evaluate: "Should I go on?", handlers: [ ask ] }; }\n'
              'emit ask;\n')
    out = ok_lines(run(source))
    assert out == [str(i) for i in range(1, len(out) + 1)]
    assert len(out) < 100
    assert ok_lines(run(source)) == out  # every run alike


def test_data_condition_decides_and_no_question_holds() -> None:
    assert ok_lines(run('is { evaluate: "x", data: { condition: false }, handlers: [ a ] };\n'
                        'not { evaluate: "x", data: { condition: false }, handlers: [ b ] };\n'
                        'is { handlers: [ c ] };\n'
                        'on a { print("a"); }\non b { print("b"); }\non c { print("c"); }\n')
                    ) == ["b", "c"]
