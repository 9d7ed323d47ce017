"""Multi-event dispatch (medflow.eventstore.handlers): a handler registered with `when` runs only
for the events it accepts, and a batch is cut only at those."""

from medflow.eventstore.handlers import InlineHandlers


class Fake:
    def __init__(self, position: int, event_type: str) -> None:
        self.position, self.event_type = position, event_type


def handlers_with(when):
    """A batched projection (recording what it has applied) and a process manager of "Result"s
    registered with `when`, which notes what the projection had applied when it ran."""
    handlers = InlineHandlers()
    table: list[int] = []
    pieces: list[list[int]] = []
    seen: list[tuple[int, int]] = []

    def project(recorded) -> None:
        table.append(recorded.position)

    def project_batch(events) -> None:
        pieces.append([r.position for r in events])
        table.extend(r.position for r in events)

    def react(recorded) -> None:
        seen.append((recorded.position, len(table)))

    for func, module in ((project, "fake.projections"), (project_batch, "fake.projections"),
                         (react, "fake.process")):
        func.__module__ = module
    handlers.on_every(project)
    handlers.batched()(project_batch)
    handlers.on(type("Result", (), {"event_type": "Result"}), when=when)(react)
    return handlers, table, pieces, seen


def test_a_conditional_handler_cuts_the_batch_only_where_it_acts():
    handlers, table, pieces, seen = handlers_with(lambda r: r.position in (3, 7))
    handlers.dispatch([Fake(i, "Result") for i in range(1, 11)])
    assert table == list(range(1, 11))
    # It saw the projection exactly as one-by-one dispatch would have shown it.
    assert seen == [(3, 3), (7, 7)]
    assert pieces == [[1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]


def test_a_conditional_handler_that_never_acts_leaves_the_batch_whole():
    handlers, _table, pieces, seen = handlers_with(lambda r: False)
    handlers.dispatch([Fake(i, "Result") for i in range(1, 11)])
    assert (pieces, seen) == ([list(range(1, 11))], [])


def test_without_when_every_event_of_its_type_cuts():
    handlers, _table, pieces, seen = handlers_with(None)
    handlers.dispatch([Fake(i, "Result" if i % 2 else "Other") for i in range(1, 6)])
    assert pieces == [[1], [2, 3], [4, 5]]
    assert seen == [(1, 1), (3, 3), (5, 5)]


def test_one_by_one_dispatch_asks_when_too():
    handlers, table, _pieces, seen = handlers_with(lambda r: r.position == 2)
    for i in range(1, 4):
        handlers.dispatch([Fake(i, "Result")])
    assert (table, [position for position, _ in seen]) == ([1, 2, 3], [2])
    # The module's handler (what a replay or a test copying handlers uses) asks it as well.
    handle = handlers.module_handler("fake.process")
    handle(Fake(5, "Result"))
    handle(Fake(2, "Result"))
    assert [position for position, _ in seen] == [2, 2]
