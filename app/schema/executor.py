"""An executor that completes plain fields without graphql-core's per-field ceremony.

Most fields of a generated type are columns: Strawberry resolves them with an attribute
read that takes no arguments and never looks at its ``info``. graphql-core still builds
a resolve info, checks for arguments and walks its generic completion for each, which
is most of the cost of a page of rows (and a re-run of a live query is mostly that).
``LeanExecutor`` is graphql-core's executor (Strawberry's, through
``execution_context_class``) with these shortcuts:

- **Plain fields.** A field read by Strawberry's basic resolver, by a resolver marked
  to read only its parent or only the context (``app.resolver_marks``: an edge's
  cursor, a generated relationship whose row is loaded), returning a scalar, an enum
  or an object without ``is_type_of``, is read and completed directly; a selection of
  such fields is completed in one loop (``_complete_plainly``). So is a stored list of
  such objects (a connection's edges), and an object a resolver returned (a root
  field's connection), whose fields' loads (the page's authors) come first, in one
  await: a live re-run walks only its root selection with graphql-core.
- **Lists read ahead.** A list whose items read a relationship still to load loads it
  for all of them in one await (the resolver's ``PREFETCH``), instead of a coroutine and
  a task per item, then completes them.
- **Shared completions.** The live runs of a batch read one snapshot through one set of
  loaders (``app.shared_reads``): an object or a list selected the same way by several
  runs is the same for all, so it is completed once and shared, and each run taking it
  reads what its completion read (``ReadSet.journal``), so its read set is what its own
  completion would have made. Only selections that cannot depend on variables (no
  directive, no fragment argument, nothing deferred) are shared.
- **Forks.** A live cohort runs one operation with the same variables again and again:
  it is built once, and each run is a ``fork`` of it (a shallow copy with its own
  per-execution state, as graphql-core makes sub-executors), which finds the root
  fields, subfields and selections that earlier runs collected and planned.
- **Root calls.** A fork calls an operation's resolver (``ARGUMENTS_ONLY``) with the
  arguments Strawberry converted for the first run, past Strawberry's per-call wrapper,
  which for such a resolver only converts them again.
- **Plain re-runs.** Once a fork family's root fields are known to be such calls, each
  returning an object or a list of objects, a run calls them and completes their values
  plainly without graphql-core's root walk at all (``execute_plainly``); on anything
  out of the ordinary graphql-core answers, given the values already resolved.

A stored field read by Strawberry's basic resolver is read from the instance's own dict
where ``getattr`` would answer that very entry (a loaded column, behind SQLAlchemy's
descriptor), else with ``getattr``.

Anything out of the ordinary (a null where none is allowed, a value the type cannot
represent, an exception, a load still pending) goes back to graphql-core, which reads
the value again and completes or reports it exactly as it always does: answers and
errors are graphql-core's (``tests/test_lean_executor.py`` compares them). Reading
twice is safe: every read here is an attribute read or a loader's cached row. With
a schema extension that resolves fields (middleware), every field goes through it.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from inspect import CO_ITERABLE_COROUTINE
from types import CoroutineType, GeneratorType
from typing import Any, NamedTuple, TypeGuard

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    is_leaf_type,
    is_object_type,
)
from graphql.execution.collect_fields import (
    DeferUsage,
    FieldDetailsList,
    FragmentDetails,
    GroupedFieldSet,
)
from graphql.execution.executor import CollectedErrors, to_nodes
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, gather_with_cancel
from graphql.type.definition import GraphQLResolveInfoHelpers
from sqlalchemy.orm import InstrumentedAttribute
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter, get_arguments
from strawberry.types.field import StrawberryField

from app.live.readset import Entry, Journal
from app.resolver_marks import ARGUMENTS_ONLY, CONTEXT_ONLY, PREFETCH, SOURCE_ONLY

# Types whose awaitability is remembered (a schema's few dozen, with room to spare).
MAX_TYPES_KNOWN = 4096
# How many stored object fields deep a list's items are read ahead (edges -> node).
PREFETCH_DEPTH = 3


class _Stored(NamedTuple):
    """How to complete a field without graphql-core's ceremony: read it (an attribute,
    or a relationship resolver that needs only the context), then coerce the value or
    run its subfields."""

    read: Callable[[Any, Any], Any]
    leaf: GraphQLLeafType | None
    object_type: GraphQLObjectType | None
    non_null: bool
    # The read is a resolver given an info that carries only ``context``.
    needs_context: bool
    # A list of objects (a connection's edges): the items' type and whether an item
    # may be null. ``leaf`` and ``object_type`` are then None.
    items: tuple[GraphQLObjectType, bool] | None = None


Prefetch = Callable[[Any, list[Any]], "Awaitable[Any] | None"]


class _Plan(NamedTuple):
    stored: _Stored | None
    prefetch: Prefetch | None


def _plan_of(field: GraphQLField) -> _Plan:
    definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    function = getattr(getattr(definition, "base_resolver", None), "wrapped_func", None)
    prefetch: Prefetch | None = getattr(function, PREFETCH, None)
    resolve = field.resolve
    if resolve is not None and getattr(resolve, "_is_default", False):
        # Strawberry's basic resolver: an attribute read that ignores its info.
        read, needs_context = _basic_read(definition) or resolve, False
    elif function is not None and getattr(function, CONTEXT_ONLY, False) and not field.args:
        read, needs_context = function, True
    elif function is not None and getattr(function, SOURCE_ONLY, False) and not field.args:
        read, needs_context = _source_only(function), False
    else:
        return _Plan(None, prefetch)
    type_: Any = field.type
    non_null = isinstance(type_, GraphQLNonNull)
    if non_null:
        type_ = type_.of_type
    if is_leaf_type(type_):
        return _Plan(_Stored(read, type_, None, non_null, needs_context), prefetch)
    if is_object_type(type_) and not type_.is_type_of:
        return _Plan(_Stored(read, None, type_, non_null, needs_context), prefetch)
    if isinstance(type_, GraphQLList):
        item_type, item_non_null = _plain_object(type_.of_type)
        if item_type is not None:
            items = (item_type, not item_non_null)
            return _Plan(_Stored(read, None, None, non_null, needs_context, items), prefetch)
    return _Plan(None, prefetch)


# Argument values a call may share with the next: no resolver can change them.
_IMMUTABLE = (str, int, float, bool, type(None), enum.Enum)


class _RootCall(NamedTuple):
    """An operation's resolver and the arguments Strawberry converted for it."""

    function: Callable[..., Any]
    info_class: type[Any]
    field: Any
    info_name: str
    kwargs: dict[str, Any]

    def __call__(self, info: GraphQLResolveInfo[Any]) -> Any:
        """The resolver called as Strawberry's wrapper would call it."""
        return self.function(
            **{self.info_name: self.info_class(_raw_info=info, _field=self.field)}, **self.kwargs
        )


class _Root(NamedTuple):
    """A root field that a re-run answers without graphql-core's walk: its resolver
    call, and how its value completes plainly."""

    name: str
    field: GraphQLField
    details: FieldDetailsList
    call: _RootCall
    # The field's object type, or its list and the list's items (type, nullable); and
    # whether a null is refused.
    object_type: GraphQLObjectType | None
    items: tuple[GraphQLList[Any], tuple[GraphQLObjectType, bool]] | None
    non_null: bool


# A root value a resolver raised (kept for graphql-core to report, not returned).
class _Raised(NamedTuple):
    error: Exception


class _Selection(NamedTuple):
    """A selection this executor completes itself."""

    # Each field's response name, plan and subselection.
    fields: list[tuple[str, _Stored, FieldDetailsList]]
    # What identifies it across the executions of a batch (the object type and the
    # document's nodes), when it does not depend on their variables; else None.
    shape: tuple[int, ...] | None
    nodes: tuple[FieldNode, ...]


def _undeferred(details: FieldDetailsList) -> bool:
    """Fields that nothing defers and no fragment argument reaches."""
    return all(d.defer_usage is None and d.fragment_variable_values is None for d in details)


def _without_directives(
    selection_set: SelectionSetNode | None, fragments: Mapping[str, FragmentDetails]
) -> bool:
    if selection_set is None:
        return True
    for selection in selection_set.selections:
        if selection.directives:
            return False
        below: SelectionSetNode | None = None
        if isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is None or fragment.definition.directives:
                return False
            if fragment.variable_signatures:
                return False
            below = fragment.definition.selection_set
        elif isinstance(selection, FieldNode | InlineFragmentNode):
            below = selection.selection_set
        if not _without_directives(below, fragments):
            return False
    return True


# What a plain completion returns when graphql-core must complete the value instead.
NOT_PLAIN: Any = object()
_UNRESOLVED: Any = object()
# A value completed plainly now; or NOT_PLAIN and the load of what it reads, after which
# to try again (None: no load would help, and graphql-core completes it).
Attempt = tuple[Any, "asyncio.Future[Any] | None"]


def _basic_read(definition: Any) -> Callable[[Any, Any], Any] | None:
    """What Strawberry's basic resolver does (``getattr(source, python_name)`` through
    two calls of its own), done directly; None if the field's default resolver is not
    ``getattr``. A mapped column loaded into the instance is read from the instance's
    dict, as its ORM descriptor would: that descriptor is most of the cost of a read."""
    name = getattr(definition, "python_name", None)
    if not isinstance(name, str) or getattr(definition, "default_resolver", None) is not getattr:
        return None

    def read(source: Any, _info: Any) -> Any:
        if _instance_dict_holds(type(source), name):
            try:
                return source.__dict__[name]
            except (AttributeError, KeyError):  # no dict (slots), or not loaded yet
                pass
        return getattr(source, name)

    return read


# (class, attribute) -> whether an instance's own dict holds that attribute's value
_DICT_READS: dict[tuple[type, str], bool] = {}


def _instance_dict_holds(kind: type, name: str) -> bool:
    """Whether ``getattr`` of ``name`` on an instance of ``kind`` returns the instance
    dict's entry when there is one: attribute lookup is Python's own, and the class
    defines no data descriptor for it but SQLAlchemy's, which returns that entry for a
    loaded attribute."""
    known = _DICT_READS.get((kind, name))
    if known is None:
        descriptor = inspect.getattr_static(kind, name, None)
        data = descriptor is not None and (
            hasattr(type(descriptor), "__set__") or hasattr(type(descriptor), "__delete__")
        )
        lookup: Any = kind.__getattribute__
        known = lookup is object.__getattribute__ and (
            not data or isinstance(descriptor, InstrumentedAttribute)
        )
        if len(_DICT_READS) < MAX_TYPES_KNOWN:
            _DICT_READS[(kind, name)] = known
    return known


def _source_only(function: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
    def read(source: Any, _info: Any) -> Any:
        return function(source)

    return read


@functools.cache
def _typename(object_type: GraphQLObjectType) -> _Stored:
    """``__typename`` on an object type: its name, as graphql-core answers it."""
    name = object_type.name

    def read(_source: Any, _info: Any) -> str:
        return name

    return _Stored(read, GraphQLString, None, True, False)


def _plain_object(type_: Any) -> tuple[GraphQLObjectType | None, bool]:
    """An object type (behind a non-null) that needs no ``is_type_of`` check, and
    whether it was non-null; None for any other type."""
    non_null = isinstance(type_, GraphQLNonNull)
    if non_null:
        type_ = type_.of_type
    if isinstance(type_, GraphQLObjectType) and not type_.is_type_of:
        return type_, non_null
    return None, non_null


class _ContextOnly:
    """The info a context-only resolver is given."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


Plans = dict[int, tuple[GraphQLField, _Plan]]

# Per schema, each field's plan by the field's identity: a GraphQLField compares by
# value, so it cannot be a key itself; it is kept beside its plan so its id stays its.
_PLANS: weakref.WeakKeyDictionary[GraphQLSchema, Plans] = weakref.WeakKeyDictionary()


_AWAITABLE_TYPES: dict[type, bool] = {}


def is_awaitable(value: Any) -> TypeGuard[Awaitable[Any]]:
    """graphql-core's test, answered once per type: it runs on every resolved value,
    and for a model instance ``hasattr(value, "__await__")`` takes pydantic's slow
    missing-attribute path. ``await`` itself looks ``__await__`` up on the type."""
    kind = type(value)
    known = _AWAITABLE_TYPES.get(kind)
    if known is not None:
        return known
    if kind is GeneratorType:
        # A generator-based coroutine is a property of the generator, not its type.
        return bool(value.gi_code.co_flags & CO_ITERABLE_COROUTINE)
    awaitable = issubclass(kind, CoroutineType) or hasattr(kind, "__await__")
    if len(_AWAITABLE_TYPES) < MAX_TYPES_KNOWN:
        _AWAITABLE_TYPES[kind] = awaitable
    return awaitable


def _helpers(executor: LeanExecutor) -> GraphQLResolveInfoHelpers:
    """The helpers an execution's resolve infos carry, holding it weakly.

    graphql-core makes them of the execution's own bound methods, and keeps them on it:
    a cycle, so each execution, with its context and all it read (the loaders, the rows
    and their ORM state), waited for the cyclic collector instead of going when it
    ended. A round of 1,000 live runs left about 37,000 such objects, and the collection
    that found them took 40-70 ms of the round. A helper called after its execution is
    gone gathers on its own and tracks nothing (there is no execution left to wait)."""
    ref = weakref.ref(executor)

    def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
        run = ref()
        return run.gather_async_work(values) if run is not None else gather_with_cancel(*values)

    def track(values: Sequence[Any]) -> None:
        run = ref()
        if run is not None:
            run.track_async_work(values)

    return GraphQLResolveInfoHelpers(gather=gather, track=track)


class LeanExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, with stored fields completed without a resolve info."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.async_helpers = _helpers(self)
        plans = _PLANS.get(self.schema)
        if plans is None:
            plans = _PLANS[self.schema] = {}
        self._plans = plans
        # Strawberry always passes a manager; it wraps resolvers only when an extension
        # resolves fields, and then every field must go through it.
        manager = self.middleware_manager
        self._lean = manager is None or not manager.middlewares
        self.is_awaitable = is_awaitable
        self._context_only = _ContextOnly(self.context_value)
        # What depends only on the document and the variables (the selections planned
        # here, the root fields collected): shared with every run forked from this one.
        self._selections: dict[tuple[int, int], tuple[FieldDetailsList, _Selection | None]] = {}
        self._root_fields: dict[int, GroupedFieldSet] = {}
        self._item_keys: dict[int, tuple[list[Any], tuple[Any, ...] | None]] = {}
        # Shared by the live runs of a batch (``Ctx.shared_completions``); None otherwise.
        self._completions: dict[Any, Any] | None = getattr(
            self.context_value, "shared_completions", None
        )
        # Root calls with their arguments converted once (``share_root_calls``), by the
        # root field's node; None where the variables may change (one execution).
        self._root_calls: dict[int, _RootCall | None] | None = None
        # The operation's root fields as re-runs answer them plainly (``plain_roots``):
        # None until known, False where they cannot be.
        self._plain_roots: list[_Root] | bool | None = None
        # Root values a plain re-run resolved before it gave way to graphql-core, which
        # takes them instead of calling the resolvers again.
        self._resolved: dict[int, Any] = {}

    # What a fork shares with the executor it was forked from (read-only, or memos of
    # what the document and the variables determine), and what each execution has of
    # its own. Every attribute is one or the other (``tests/test_lean_executor.py``
    # checks, so an attribute a new graphql-core adds is placed before it is shared).
    SHARED_BY_FORKS = frozenset(
        {
            "schema", "fragment_definitions", "fragments", "root_value", "operation",
            "variable_values", "field_resolver", "type_resolver", "subscribe_field_resolver",
            "enable_early_execution", "hide_suggestions", "abort_signal", "hooks",
            "middleware_manager", "error_propagation", "is_awaitable", "is_async_iterable",
            "operation_extensions", "_relevant_sub_fields", "_stream_usages",
            "_initial_execution_plans", "_deferred_execution_plans", "_plans", "_lean",
            "_selections", "_root_fields", "_root_calls", "_plain_roots",
        }
    )  # fmt: skip
    OWN_PER_EXECUTION = frozenset(
        {
            "context_value", "collected_errors", "pending_incremental_futures",
            "background_futures", "async_work_finished_hook_task", "async_helpers",
            "defer_usage_set", "groups", "tasks", "streams", "_context_only", "_item_keys",
            "_completions", "_resolved",
        }
    )  # fmt: skip

    def fork(self, context_value: Any) -> LeanExecutor:
        """Another execution of this operation with the same variables, for
        ``context_value``: a live cohort's next run.

        A shallow copy with per-execution state of its own, as graphql-core makes its
        sub-executors and per-event executors. What was collected and planned from the
        document and the variables (subfields, selections, the root fields) is shared,
        so a re-run neither coerces the variables nor collects a field again."""
        # ``copy`` goes through ``__reduce_ex__``; a new instance given this one's
        # attributes is the same shallow copy at a fraction of the cost.
        run = object.__new__(type(self))
        run.__dict__.update(self.__dict__)
        run.context_value = context_value
        run.collected_errors = CollectedErrors()
        run.pending_incremental_futures = set()
        run.background_futures = set()
        run.async_work_finished_hook_task = None
        run.async_helpers = _helpers(run)
        run.defer_usage_set = None
        run.groups = []
        run.tasks = []
        run.streams = []
        run._context_only = _ContextOnly(context_value)
        run._item_keys = {}
        run._completions = getattr(context_value, "shared_completions", None)
        run._resolved = {}
        return run

    def share_root_calls(self) -> None:
        """This executor's forks call an operation's resolver (``ARGUMENTS_ONLY``) with
        the arguments Strawberry converted for the first of them: the variables never
        change, and converting them again was a good part of a short live run. Strawberry's
        wrapper adds nothing else to such a resolver (no field extension, no exception
        handler, no middleware), so the call is the one it would make."""
        self._root_calls = {}

    def execute_collected_root_fields(
        self,
        root_type: GraphQLObjectType,
        root_value: Any,
        grouped_field_set: GroupedFieldSet,
        serially: bool,
        new_defer_usages: Sequence[DeferUsage],
    ) -> Any:
        # The root fields as first collected: graphql-core memoizes subfields by the
        # identity of their field list, so with the same root lists every run forked
        # from this executor finds the subfields it collected before.
        if not new_defer_usages:
            grouped_field_set = self._root_fields.setdefault(id(self.operation), grouped_field_set)
        return super().execute_collected_root_fields(
            root_type, root_value, grouped_field_set, serially, new_defer_usages
        )

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        if self._lean:
            name = field_details_list[0].node.name.value
            if name == "__typename":
                return parent_type.name
            field = self.schema.get_field(parent_type, name)
            if field is not None:
                plan = self._plan(field)
                if plan is not None:
                    return self._complete_stored(
                        plan, parent_type, source, field_details_list, path, position_context
                    )
                if self._root_calls is not None and path.prev is None:
                    key = id(field_details_list[0].node)
                    if key in self._root_calls:
                        call = self._root_calls[key]
                    else:
                        call = self._root_calls[key] = self._root_call(
                            field, parent_type, source, field_details_list, path
                        )
                    if call is not None:
                        return self._execute_root_call(
                            call, field, field_details_list, parent_type, source, path,
                            position_context,
                        )  # fmt: skip
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def _root_call(
        self,
        field: GraphQLField,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> _RootCall | None:
        """The root field's resolver with its arguments converted, made once per fork
        family; None where it is not such a call, or the arguments do not convert (the
        ordinary path then reports why)."""
        details = field_details_list[0]
        definition: StrawberryField | None = field.extensions.get(
            GraphQLCoreConverter.DEFINITION_BACKREF
        )
        strawberry_schema: Any = getattr(self.schema, "_strawberry_schema", None)
        converter = getattr(strawberry_schema, "schema_converter", None)
        if definition is None or converter is None or details.fragment_variable_values:
            return None
        resolver = definition.base_resolver
        function = resolver.wrapped_func if resolver is not None else None
        if (
            resolver is None
            or not inspect.isfunction(function)
            or not getattr(function, ARGUMENTS_ONLY, False)
            or definition.extensions
            or definition.is_subscription
            or resolver.info_parameter is None
            or resolver.self_parameter is not None
            or resolver.parent_parameter is not None
            or resolver.root_parameter is not None
            or getattr(converter, "_exception_handler_specs", True)
        ):
            return None
        info_class = strawberry_schema.config.info_class
        raw_info = self.build_resolve_info(field, to_nodes(field_details_list), parent_type, path)
        try:
            raw = get_argument_values(
                field, details.node, self.variable_values, None, self.hide_suggestions
            )
            _, kwargs = get_arguments(
                field=definition,
                source=source,
                info=info_class(_raw_info=raw_info, _field=definition),
                kwargs=raw,
                config=strawberry_schema.config,
                scalar_registry=converter.scalar_registry,
            )
        except Exception:
            return None  # the ordinary path reports it
        info_name = resolver.info_parameter.name
        kwargs.pop(info_name, None)
        if not all(isinstance(value, _IMMUTABLE) for value in kwargs.values()):
            return None
        return _RootCall(function, info_class, definition, info_name, kwargs)

    def _execute_root_call(
        self,
        call: _RootCall,
        field: GraphQLField,
        field_details_list: FieldDetailsList,
        parent_type: GraphQLObjectType,
        source: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        """graphql-core's ``execute_field`` for a root call: the resolver called as
        Strawberry's wrapper would call it, its value completed and its errors
        handled as graphql-core does."""
        return_type = field.type
        info = self.build_resolve_info(field, to_nodes(field_details_list), parent_type, path)
        try:
            result = self._resolved.pop(id(field_details_list[0].node), _UNRESOLVED)
            if result is _UNRESOLVED:
                result = call(info)
            elif isinstance(result, _Raised):
                raise result.error
            if self.is_awaitable(result):
                return self.complete_awaitable_value(
                    return_type, field_details_list, info, path, result, position_context
                )
            completed = self.complete_value(
                return_type, field_details_list, info, path, result, position_context
            )
            if self.is_awaitable(completed):

                async def await_completed() -> Any:
                    try:
                        return await completed
                    except Exception as raw_error:
                        self.handle_field_error(raw_error, return_type, field_details_list, path)
                        return None

                return await_completed()
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        return completed

    # -- re-runs answered without graphql-core's walk -----------------------------------

    def plain_roots(self) -> list[_Root] | None:
        """The operation's root fields, if a re-run can answer them plainly: each a
        root call (``share_root_calls``) returning an object or a list of objects that
        need no type check. Known once a run has collected the root fields and made
        their calls (None before, and for any other operation)."""
        if isinstance(self._plain_roots, list):
            return self._plain_roots
        if self._plain_roots is False:
            return None
        calls, grouped = self._root_calls, self._root_fields.get(id(self.operation))
        if calls is None or not self._lean or self.operation.operation != OperationType.QUERY:
            self._plain_roots = False
            return None
        root_type = self.schema.query_type
        if grouped is None or root_type is None:
            return None
        roots: list[_Root] = []
        for name, details in grouped.items():
            key = id(details[0].node)
            if details[0].node.name.value == "__typename":
                self._plain_roots = False  # answered by graphql-core, never called
                return None
            if key not in calls:
                return None  # not called yet: asked again after the next run
            call = calls[key]
            field = self.schema.get_field(root_type, details[0].node.name.value)
            if call is None or field is None or not _undeferred(details):
                self._plain_roots = False
                return None
            type_: Any = field.type
            non_null = isinstance(type_, GraphQLNonNull)
            if non_null:
                type_ = type_.of_type
            object_type, items = _plain_object(type_)[0], None
            if object_type is None and isinstance(type_, GraphQLList):
                item_type, item_non_null = _plain_object(type_.of_type)
                if item_type is not None:
                    items = (type_, (item_type, not item_non_null))
            if object_type is None and items is None:
                self._plain_roots = False
                return None
            roots.append(_Root(name, field, details, call, object_type, items, non_null))
        self._plain_roots = roots
        return roots

    async def execute_plainly(self, roots: list[_Root]) -> dict[str, Any] | None:
        """This run's data, each root field resolved and its value completed plainly;
        None when one is out of the ordinary (an error, a null where none is allowed, a
        value that is not plain): ``execute_operation`` then answers, as graphql-core
        does, with the root values resolved here (no resolver is called twice).

        A plain re-run's work is its resolver's and its value's: graphql-core's root
        walk (collecting the root fields, a resolve info and an awaited completion per
        field, building the response) was a good part of a short run."""
        root_type = self.schema.query_type
        assert root_type is not None
        data: dict[str, Any] = {}
        for root in roots:
            path = Path(None, root.name, root_type.name)
            info = self.build_resolve_info(root.field, to_nodes(root.details), root_type, path)
            try:
                value = root.call(info)
                if self.is_awaitable(value):
                    value = await value
            except Exception as error:
                self._resolved[id(root.details[0].node)] = _Raised(error)
                return None
            self._resolved[id(root.details[0].node)] = value
            completed = await self._plain_root(root, value)
            if completed is NOT_PLAIN:
                return None
            data[root.name] = completed
        self._resolved.clear()
        return data

    async def _plain_root(self, root: _Root, value: Any) -> Any:
        if value is None:
            return NOT_PLAIN if root.non_null else None
        if root.items is not None:
            list_type, items_type = root.items
            if not isinstance(value, list):
                return NOT_PLAIN

            def plainly() -> Any:
                return self._plain_items(items_type, root.details, value)

            completed, loading = self._items_or_loads(list_type, root.details, value, plainly)
            if loading is None:
                return completed
            await loading
            return plainly()
        assert root.object_type is not None
        completed, loading = self._object_or_loads(root.object_type, root.details, value)
        if loading is None:
            return completed
        await loading
        return self._complete_plainly(root.object_type, root.details, value)

    def _plan(self, field: GraphQLField) -> _Stored | None:
        return self._full_plan(field).stored

    def _full_plan(self, field: GraphQLField) -> _Plan:
        plans = self._plans
        entry = plans.get(id(field))
        if entry is None:
            entry = (field, _plan_of(field))
            plans[id(field)] = entry
        return entry[1]

    # -- lists: the related rows of every item, loaded before the items complete -------

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """A list of objects is completed plainly when it can be (``_complete_plainly``).
        When its items read a relationship still to load (each message's ``author``),
        it is loaded for all items first, in one await: completed one by one, each item
        would await its own load, a coroutine and a task per item and level. The items
        then complete with their rows at hand (``Recording.load_ready``)."""
        ordinary = super().complete_list_value
        if not self._lean or not isinstance(result, list):
            return ordinary(return_type, field_details_list, info, path, result, position_context)

        def plainly() -> Any:
            return self._complete_items_plainly(return_type, field_details_list, path, result)

        def complete() -> Any:
            plain = plainly()
            if plain is not NOT_PLAIN:
                return plain
            return ordinary(return_type, field_details_list, info, path, result, position_context)

        plain, loading = self._items_or_loads(return_type, field_details_list, result, plainly)
        if plain is not NOT_PLAIN:
            return plain
        if loading is None:
            return ordinary(return_type, field_details_list, info, path, result, position_context)

        async def after_loads() -> Any:
            # A failed load fails the items that read it, when they do, as before.
            await loading
            completed = complete()
            if self.is_awaitable(completed):
                return await completed
            return completed

        return after_loads()

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """An object that a resolver returned (a root field's connection) is completed
        plainly when it can be, and shared across a batch's runs as any other."""
        ordinary = super().complete_object_value
        if not self._lean or return_type.is_type_of:
            return ordinary(return_type, field_details_list, info, path, result, position_context)
        plain, loading = self._object_or_loads(return_type, field_details_list, result)
        if plain is not NOT_PLAIN:
            return plain
        if loading is None:
            return ordinary(return_type, field_details_list, info, path, result, position_context)

        async def after_loads() -> Any:
            # What its fields read is loaded first (a page's authors), in one await, as
            # a list's items are; then it completes with its rows at hand.
            await loading
            plain = self._complete_plainly(return_type, field_details_list, result)
            if plain is not NOT_PLAIN:
                return plain
            completed = ordinary(
                return_type, field_details_list, info, path, result, position_context
            )
            return await completed if self.is_awaitable(completed) else completed

        return after_loads()

    def _items_or_loads(
        self,
        list_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        items: list[Any],
        plainly: Callable[[], Any],
    ) -> Attempt:
        """A list's items completed by ``plainly`` now, or the load to wait for first."""
        key, loading = self._batch_load(list_type, field_details_list, items)
        if loading is not None and not loading.done():
            # A load another run of the batch has under way is waited for: trying the
            # items first could only fail on the rows still missing (a batch's runs
            # reach their lists together).
            return NOT_PLAIN, loading
        # Otherwise first as the rows are (another run has often completed them).
        plain = plainly()
        if plain is not NOT_PLAIN or loading is not None:
            return plain, None
        return NOT_PLAIN, self._load(list_type.of_type, field_details_list, items, key)

    def _object_or_loads(
        self, object_type: GraphQLObjectType, field_details_list: FieldDetailsList, source: Any
    ) -> Attempt:
        """An object completed plainly now, or the load to wait for first."""
        plain = self._complete_plainly(object_type, field_details_list, source)
        if plain is not NOT_PLAIN:
            return plain, None
        return NOT_PLAIN, self._object_loads(object_type, field_details_list, source)

    def _object_loads(
        self, object_type: GraphQLObjectType, field_details_list: FieldDetailsList, source: Any
    ) -> asyncio.Future[Any] | None:
        """The load of what an object's fields read and is not loaded yet (None if
        nothing is): in a batch, the one another run started for the same object."""
        key: tuple[Any, ...] | None = None
        if self._completions is not None:
            selection = self._selection(object_type, field_details_list)
            if selection is not None and selection.shape is not None:
                key = (selection.shape, id(source))
                started = self._completions.get(("loading", key))
                if started is not None:
                    loading: asyncio.Future[Any] = started[0]
                    return loading
        # The object is read ahead as a list of one item is.
        return self._load(object_type, field_details_list, [source], key)

    def _batch_load(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        items: list[Any],
    ) -> tuple[tuple[Any, ...] | None, asyncio.Future[Any] | None]:
        """What names the load of what these items read across the batch's runs (None
        outside a batch), and that load if a run has started it."""
        item_type, _ = _plain_object(return_type.of_type)
        if item_type is None:
            return None, None
        key = self._items_key(item_type, field_details_list, items)
        if key is None:
            return None, None
        assert self._completions is not None
        started = self._completions.get(("loading", key))
        return key, started[0] if started is not None else None

    def _load(
        self,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        items: list[Any],
        key: tuple[Any, ...] | None,
    ) -> asyncio.Future[Any] | None:
        """The load of what the items read and is not loaded yet; None if nothing is.
        Under ``key``, the batch's other runs reading the same items wait for it."""
        try:
            loads = self._prefetches(item_type, field_details_list, items, PREFETCH_DEPTH)
        except Exception:
            # Reading ahead is an optimisation: the items report their own errors.
            loads = []
        pending = [load for load in loads if not (isinstance(load, asyncio.Future) and load.done())]
        if not pending:
            return None
        loading = asyncio.gather(*pending, return_exceptions=True)
        if key is not None:
            assert self._completions is not None
            self._completions[("loading", key)] = (loading, list(items))
        return loading

    # -- whole selections of stored fields, completed in one loop ------------------------

    def _selection(
        self, object_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> _Selection | None:
        """The object's selection when every field in it is one this executor completes
        (and nothing is deferred), else None. Made once per execution and selection, as
        graphql-core collects subfields."""
        key = (id(object_type), id(field_details_list))
        entry = self._selections.get(key)
        if entry is not None:
            return entry[1]
        grouped, defers, _ = self.collect_subfields(object_type, field_details_list)
        fields: list[tuple[str, _Stored, FieldDetailsList]] | None = [] if not defers else None
        for name, sub_details in grouped.items():
            if fields is None:
                break
            field_name = sub_details[0].node.name.value
            if field_name == "__typename":
                # Clients add it to every selection (urql's cache does): the type's name.
                plan: _Stored | None = _typename(object_type)
            else:
                field = self.schema.get_field(object_type, field_name)
                plan = self._plan(field) if field is not None else None
            if plan is None:
                fields = None
            else:
                fields.append((name, plan, sub_details))
        selection = None
        if fields is not None:
            nodes = tuple(details.node for details in field_details_list)
            # Only a batch's runs share completions (a live cohort's runs always are
            # one): a plain request need not walk what is below for directives.
            static = self._completions is not None and self._static(field_details_list)
            shape = (id(object_type), *map(id, nodes)) if static else None
            selection = _Selection(fields, shape, nodes)
        self._selections[key] = (field_details_list, selection)
        return selection

    def _static(self, field_details_list: FieldDetailsList) -> bool:
        """Whether what is selected under these fields is the same whatever the
        variables: no directive anywhere below (``@include(if: $x)``), nothing deferred,
        no fragment arguments. Fields here take no arguments (see ``_plan_of``)."""
        return _undeferred(field_details_list) and all(
            _without_directives(details.node.selection_set, self.fragments)
            for details in field_details_list
        )

    def _complete_plainly(
        self, object_type: GraphQLObjectType, field_details_list: FieldDetailsList, source: Any
    ) -> Any:
        """The completed object, or ``NOT_PLAIN`` when anything in it is out of the
        ordinary (a null where none is allowed, a pending load, an error): then
        graphql-core completes it as always, reading again what was read here.

        In a batch of live runs over one snapshot, an object completed for one run is
        the same for every run that selects it the same way: it is completed once, and
        the others take it and read what it read (its journal of reads)."""
        selection = self._selection(object_type, field_details_list)
        if selection is None:
            return NOT_PLAIN
        if self._completions is None or selection.shape is None:
            return self._complete_fields(selection.fields, source)
        return self._shared(
            (selection.shape, id(source)),
            (source, selection.nodes),
            lambda: self._complete_fields(selection.fields, source),
        )

    def _shared(self, key: Any, keep: Any, complete: Callable[[], Any]) -> Any:
        """What ``complete`` returns, done once per batch for ``key``: another run's
        completion is taken as it is, and what it read is read here too (its journal).
        ``keep`` holds what the ids in ``key`` are ids of, for as long as the entry."""
        assert self._completions is not None
        reads = self.context_value.reads
        done = self._completions.get(key)
        if done is not None:
            reads.replay(done[1])
            return done[0]
        outer = reads.journal
        journal: list[Entry] = []
        reads.journal = journal
        try:
            completed = complete()
        finally:
            reads.journal = outer
        if outer is not None:
            outer.extend(journal)
        if completed is not NOT_PLAIN:
            self._completions[key] = (completed, Journal.of(journal), keep)
        return completed

    def _complete_fields(
        self, fields: list[tuple[str, _Stored, FieldDetailsList]], source: Any
    ) -> Any:
        completed: dict[str, Any] = {}
        for name, plan, sub_details in fields:
            value = self._plain_value(plan, sub_details, source)
            if value is NOT_PLAIN:
                return NOT_PLAIN
            completed[name] = value
        return completed

    def _read(self, plan: _Stored, source: Any) -> Any:
        return plan.read(source, self._context_only if plan.needs_context else None)

    def _plain_value(self, plan: _Stored, field_details_list: FieldDetailsList, source: Any) -> Any:
        """One field of ``source`` read and completed, or ``NOT_PLAIN``."""
        try:
            value = self._read(plan, source)
        except Exception:
            return NOT_PLAIN
        if value is None or value is Undefined:
            return NOT_PLAIN if plan.non_null else None
        if self.is_awaitable(value) or isinstance(value, Exception):
            if isinstance(value, CoroutineType):
                value.close()
            return NOT_PLAIN
        leaf = plan.leaf
        if leaf is None:
            if plan.items is not None:
                return self._plain_items(plan.items, field_details_list, value)
            assert plan.object_type is not None
            return self._complete_plainly(plan.object_type, field_details_list, value)
        try:
            value = leaf.coerce_output_value(value)
        except Exception:
            return NOT_PLAIN
        return NOT_PLAIN if value is None or value is Undefined else value

    def _complete_items_plainly(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        path: Path,
        items: list[Any],
    ) -> Any:
        """A list of objects completed plainly, or ``NOT_PLAIN`` for graphql-core."""
        item_type, non_null = _plain_object(return_type.of_type)
        if item_type is None:
            return NOT_PLAIN
        if self.get_stream_usage(field_details_list, path) is not None:
            return NOT_PLAIN
        return self._items((item_type, not non_null), field_details_list, items)

    def _plain_items(
        self,
        items_type: tuple[GraphQLObjectType, bool],
        field_details_list: FieldDetailsList,
        value: Any,
    ) -> Any:
        """A stored list of objects (a connection's edges), read as a selection's field.
        A list carrying a directive (``@stream``) is graphql-core's, as is any value
        other than a list."""
        if not isinstance(value, list) or any(d.node.directives for d in field_details_list):
            return NOT_PLAIN
        return self._items(items_type, field_details_list, value)

    def _items(
        self,
        items_type: tuple[GraphQLObjectType, bool],
        field_details_list: FieldDetailsList,
        items: list[Any],
    ) -> Any:
        item_type, nullable = items_type

        def complete() -> Any:
            completed: list[Any] = []
            for item in items:
                if item is None:
                    if not nullable:
                        return NOT_PLAIN
                    completed.append(None)
                    continue
                value = self._complete_plainly(item_type, field_details_list, item)
                if value is NOT_PLAIN:
                    return NOT_PLAIN
                completed.append(value)
            return completed

        key = self._items_key(item_type, field_details_list, items)
        if key is None:
            return complete()
        return self._shared(key, list(items), complete)

    def _items_key(
        self, item_type: GraphQLObjectType, field_details_list: FieldDetailsList, items: list[Any]
    ) -> tuple[Any, ...] | None:
        """What identifies a list's completion across a batch's runs: its items' shape
        and the items themselves (pages of one list share their edges)."""
        if self._completions is None:
            return None
        known = self._item_keys.get(id(items))
        if known is not None and known[0] is items:
            return known[1]
        selection = self._selection(item_type, field_details_list)
        key = None
        if selection is not None and selection.shape is not None:
            key = (selection.shape, "items", *map(id, items))
        # Asked again for the same list (tried, read ahead, tried again): kept with it.
        self._item_keys[id(items)] = (items, key)
        return key

    def _prefetches(
        self,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        items: list[Any],
        depth: int,
    ) -> list[Awaitable[Any]]:
        object_type, _ = _plain_object(item_type)
        if depth == 0 or object_type is None:
            return []
        grouped = self.collect_subfields(object_type, field_details_list).grouped_field_set
        loads: list[Awaitable[Any]] = []
        for sub_details in grouped.values():
            field = self.schema.get_field(object_type, sub_details[0].node.name.value)
            if field is None:
                continue
            plan = self._full_plan(field)
            if plan.prefetch is not None:
                load = plan.prefetch(self.context_value, items)
                if load is not None:
                    loads.append(load)
            elif plan.stored is not None and plan.stored.object_type is not None:
                stored = plan.stored
                children = [
                    child for item in items if (child := self._read(stored, item)) is not None
                ]
                if children:
                    loads.extend(
                        self._prefetches(plan.stored.object_type, sub_details, children, depth - 1)
                    )
            elif plan.stored is not None and (items_type := plan.stored.items) is not None:
                # A stored list (a connection's edges): its items, all lists together.
                stored = plan.stored
                children = [
                    child
                    for item in items
                    if isinstance(listed := self._read(stored, item), list)
                    for child in listed
                    if child is not None
                ]
                if children:
                    loads.extend(self._prefetches(items_type[0], sub_details, children, depth - 1))
        return loads

    def _complete_stored(
        self,
        plan: _Stored,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        value = self._plain_value(plan, field_details_list, source)
        if value is not NOT_PLAIN:
            return value
        # graphql-core reads it again and completes or reports it as always (a pending
        # load: the resolver, asked again, hands back the same load).
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )
